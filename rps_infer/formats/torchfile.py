"""PyTorch files, recognised by their content, never by their extension:

- ``wrapper``: the project's own ``.pt`` (a state_dict plus a format tag: MLP or U-Net);
- ``torchscript``: ``torch.jit.save`` (a zip holding ``constants.pkl`` and ``code/``);
- ``export``: ``torch.export.save`` (a ``.pt2`` archive, with ``archive_format``);
- ``state_dict``: ``torch.save`` of a dict of tensors, also nested under a key such as
  ``state_dict``; the network comes from a user class (:class:`~rps_infer.formats.ModelHints`).

Everything ``torch.save`` wrote is read with ``weights_only=True``: a pickle of arbitrary
objects (a whole ``nn.Module``) is refused, nothing in it runs.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path
from typing import Any

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import KINDS, MLPWeights
from rps_infer.tensors import TensorSpec

FORMAT_TAG = "rps_infer.mlp"
UNET_TAG = "rps_infer.unet"
FORMAT_VERSION = 1
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "ema")
ACCEPTED = ("a state_dict (a dict of tensors, also under a key such as 'state_dict'), a TorchScript file, "
            "a torch.export program or an rps_infer .pt")


def write(weights: MLPWeights, path: str | Path) -> None:
    """Save ``weights`` as an rps_infer ``.pt`` file (not atomic; see rps_infer.convert)."""
    import torch

    from rps_infer.nets import torch_mlp

    module = torch_mlp.build(weights)
    torch.save({"format": FORMAT_TAG, "version": FORMAT_VERSION, "kind": weights.kind,
                "sizes": [weights.input_size, weights.hidden_size, weights.output_size],
                "state_dict": module.state_dict()}, str(path))


def write_unet(model, path: str | Path) -> None:
    """Save a :class:`~rps_infer.nets.unet.LipsyncUNet` (config + state_dict, BN statistics included)."""
    import dataclasses

    import torch

    torch.save({"format": UNET_TAG, "version": FORMAT_VERSION, "config": dataclasses.asdict(model.config),
                "state_dict": model.state_dict()}, str(path))


def variant_of(path: Path) -> str:
    """``torchscript``, ``export`` or ``saved`` (what ``torch.save`` writes), from the archive's names."""
    if not zipfile.is_zipfile(path):
        return "saved"  # the legacy (non-zip) torch.save format
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/archive_format") for n in names):
        return "export"
    return "saved"


def _load(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of many types
        message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            message = "a pickle of Python objects (refused unopened: loading it with weights_only=False would run code)"
        raise ModelFormatError(path, "<file>", f"{ACCEPTED}, loadable with weights_only=True", message) from None


def state_dict_of(obj: Any) -> dict | None:
    """The dict of tensors in a checkpoint (at the top or under one of :data:`STATE_KEYS`), else None;
    a ``module.`` prefix (DataParallel) is dropped."""
    import torch

    def tensors(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    found = obj if tensors(obj) else next((obj[k] for k in STATE_KEYS if isinstance(obj, dict) and tensors(obj.get(k))),
                                          None)
    if found is not None and all(k.startswith("module.") for k in found):
        found = {k[len("module."):]: v for k, v in found.items()}
    return found


def declarations(path: Path, hints) -> tuple[MLPWeights | None, dict[str, str], str]:
    """(MLP weights, metadata, variant) of a PyTorch file."""
    variant = variant_of(path)
    if variant != "saved":
        return None, {}, variant
    obj = _load(path)
    if isinstance(obj, dict) and obj.get("format") == UNET_TAG:
        return None, {"family": "unet"}, "wrapper"
    if isinstance(obj, dict) and obj.get("format") == FORMAT_TAG:
        return read_weights(path, obj), {}, "wrapper"
    if state_dict_of(obj) is not None:
        return None, {}, "state_dict"
    found = f"a {type(obj).__name__}" + (f" with keys {sorted(obj)[:6]}" if isinstance(obj, dict) else "")
    raise ModelFormatError(path, "<content>", ACCEPTED, found)


def read_state(path: str | Path, obj: Any = None) -> dict[str, Any]:
    """Load and validate an rps_infer MLP checkpoint dict (tensors stay torch tensors)."""
    path = Path(path)
    obj = _load(path) if obj is None else obj
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ModelFormatError(path, "format", repr(FORMAT_TAG), repr(found))
    if obj.get("kind") not in KINDS:
        raise ModelFormatError(path, "kind", "'policy' or 'value'", repr(obj.get("kind")))
    state = obj.get("state_dict")
    want = {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    if not isinstance(state, dict) or set(state) != want:
        raise ModelFormatError(path, "state_dict", f"keys {sorted(want)}",
                               repr(sorted(state) if isinstance(state, dict) else state))
    return obj


def read_weights(path: str | Path, obj: Any = None) -> MLPWeights:
    """The float64 weights stored in an rps_infer MLP ``.pt`` file."""
    obj = read_state(path, obj)
    state = {k: v.double().numpy() for k, v in obj["state_dict"].items()}
    return MLPWeights.from_torch_state(obj["kind"], state)


def read_module(model) -> Any:
    """The network of a :class:`~rps_infer.formats.ModelFile` of format ``torch``, in eval mode
    (TorchScript and exported programs as they are)."""
    import torch

    path = model.path
    if model.variant == "torchscript":
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # RuntimeError with the TorchScript loader's message
            raise ModelFormatError(path, "<file>", "a TorchScript archive", str(exc).splitlines()[0][:200]) from None
    if model.variant == "export":
        return _exported(path)
    obj = _load(path)
    if model.variant == "wrapper":
        return _wrapper_module(path, obj)
    return _user_module(path, state_dict_of(obj), model.hints)


def _exported(path: Path):
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # the archive reader's own errors
        raise ModelFormatError(path, "<file>", "a torch.export program", str(exc).splitlines()[0][:200]) from None
    module = program.module()
    # The program knows its inputs: names, dtypes, shapes with its dynamic dims as None.
    names = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    module.rps_input_specs = tuple(
        TensorSpec(name, str(values[name].dtype).removeprefix("torch."),
                   tuple(d if isinstance(d, int) else None for d in values[name].shape)) for name in names)
    return module


def _wrapper_module(path: Path, obj: dict):
    from rps_infer.nets import torch_mlp

    if obj.get("format") == UNET_TAG:
        from rps_infer.nets import unet

        try:
            model = unet.LipsyncUNet(unet.UNetConfig(**obj["config"]))
            model.load_state_dict(obj["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFormatError(path, "config/state_dict", "a lipsync U-Net checkpoint",
                                   str(exc).splitlines()[-1].strip()[:200]) from None
        return model.eval()
    obj = read_state(path, obj)
    module = torch_mlp.TorchMLP(obj["kind"], *obj["sizes"])
    try:
        module.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ModelFormatError(path, "state_dict", f"tensors matching sizes {obj['sizes']}",
                               str(exc).splitlines()[-1].strip()) from None
    return module.eval()


def user_class(target: str, python_path: tuple[Path, ...] = ()):
    """The class ``"package.module:ClassName"``, imported from the current folder or ``python_path``."""
    from rps_infer.errors import UnsupportedModelError

    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise UnsupportedModelError(f"--torch-model expects module.path:ClassName, got {target!r}")
    folders = [str(Path(p).resolve()) for p in python_path] + [str(Path.cwd())]
    added = [f for f in folders if f not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnsupportedModelError(f"--torch-model {target}: {exc} (looked in {', '.join(folders)} and the "
                                    "installed packages; add the folder with --python-path)") from None
    except (Exception, SystemExit) as exc:  # the user's module failed while importing: say how
        raise UnsupportedModelError(f"--torch-model {target}: importing {module_name!r} failed: "
                                    f"{type(exc).__name__}: {exc}") from None
    finally:
        for f in added:
            sys.path.remove(f)
    if not hasattr(module, class_name):
        raise UnsupportedModelError(f"--torch-model {target}: module {module_name!r} has no {class_name!r}")
    return getattr(module, class_name)


def _user_module(path: Path, state: dict, hints):
    from rps_infer.errors import UnsupportedModelError

    if not hints.torch_model:
        raise UnsupportedModelError(f"{path} is a state_dict checkpoint: give the network's class with "
                                    "--torch-model module.path:ClassName (and --torch-kwargs for its arguments)")
    cls = user_class(hints.torch_model, hints.python_path)
    try:
        module = cls(**dict(hints.torch_kwargs))
    except Exception as exc:  # the user's constructor: any error is theirs to read
        raise UnsupportedModelError(f"{hints.torch_model}(**{dict(hints.torch_kwargs)}) failed: "
                                    f"{type(exc).__name__}: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelFormatError(path, "state_dict", f"the parameters of {hints.torch_model}", detail) from None
    return module.eval()


def input_specs(model, module) -> tuple[TensorSpec, ...]:
    """The inputs of a PyTorch network: an exported program's own, else given shapes
    (``--input-shape``), else the network's ``io_specs()``, else a named error."""
    from rps_infer.errors import UnsupportedModelError

    hints = model.hints
    if getattr(module, "rps_input_specs", None):  # a program knows its inputs, static dims included
        return module.rps_input_specs
    if hints.input_shapes:
        return tuple(TensorSpec(name, "float32", shape if hints.static_batch else (None, *shape[1:]))
                     for name, shape in hints.input_shapes.items())
    if hasattr(module, "io_specs"):
        return tuple(module.io_specs()[0])
    raise UnsupportedModelError(f"{model.path}: {model.variant} files do not record their input shapes; give "
                                "--input-shape NAME=1x3x224x224 for each input (the first dim is the batch)")


def parameter_count(module) -> int:
    """Number of parameters (and buffers excluded) of a network."""
    return sum(p.numel() for p in module.parameters())
