"""The ``.pt`` format: a state_dict plus metadata, read back with ``weights_only=True``
(never unpickling arbitrary objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import KINDS, MLPWeights

FORMAT_TAG = "rps_infer.mlp"
UNET_TAG = "rps_infer.unet"
FORMAT_VERSION = 1


def write(weights: MLPWeights, path: str | Path) -> None:
    """Save ``weights`` as an rps_infer ``.pt`` file (not atomic; see rps_infer.convert)."""
    import torch

    from rps_infer.nets import torch_mlp

    module = torch_mlp.build(weights)
    torch.save(
        {
            "format": FORMAT_TAG,
            "version": FORMAT_VERSION,
            "kind": weights.kind,
            "sizes": [weights.input_size, weights.hidden_size, weights.output_size],
            "state_dict": module.state_dict(),
        },
        str(path),
    )


def write_unet(model, path: str | Path) -> None:
    """Save a :class:`~rps_infer.nets.unet.LipsyncUNet` (config + state_dict, BN statistics included)."""
    import dataclasses

    import torch

    torch.save({"format": UNET_TAG, "version": FORMAT_VERSION, "config": dataclasses.asdict(model.config),
                "state_dict": model.state_dict()}, str(path))


def family(path: str | Path) -> str:
    """``mlp`` or ``unet``: which network an rps_infer ``.pt`` file holds."""
    return "unet" if _load(Path(path)).get("format") == UNET_TAG else "mlp"


def _load(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing .pt file", "no such file")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of many types
        raise ModelFormatError(path, "<file>", "a torch checkpoint loadable with weights_only=True",
                               str(exc).splitlines()[0][:200]) from None
    if not isinstance(obj, dict) or obj.get("format") not in (FORMAT_TAG, UNET_TAG):
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ModelFormatError(path, "format", f"{FORMAT_TAG!r} or {UNET_TAG!r}", repr(found))
    return obj


def read_state(path: str | Path) -> dict[str, Any]:
    """Load and validate an MLP checkpoint dict (tensors stay torch tensors)."""
    path = Path(path)
    obj = _load(path)
    if obj["format"] != FORMAT_TAG:
        raise ModelFormatError(path, "format", repr(FORMAT_TAG), repr(obj["format"]))
    if obj.get("kind") not in KINDS:
        raise ModelFormatError(path, "kind", "'policy' or 'value'", repr(obj.get("kind")))
    state = obj.get("state_dict")
    want = {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    if not isinstance(state, dict) or set(state) != want:
        raise ModelFormatError(path, "state_dict", f"keys {sorted(want)}",
                               repr(sorted(state) if isinstance(state, dict) else state))
    return obj


def read_weights(path: str | Path) -> MLPWeights:
    """The float64 weights stored in an rps_infer ``.pt`` file."""
    obj = read_state(path)
    state = {k: v.double().numpy() for k, v in obj["state_dict"].items()}
    return MLPWeights.from_torch_state(obj["kind"], state)


def read_module(path: str | Path):  # -> TorchMLP | LipsyncUNet
    """The network in an rps_infer ``.pt`` file (RPS MLP or lipsync U-Net), in eval mode."""
    from rps_infer.nets import torch_mlp

    if family(path) == "unet":
        return _read_unet(Path(path))
    obj = read_state(path)
    sizes = obj["sizes"]
    module = torch_mlp.TorchMLP(obj["kind"], *sizes)
    try:
        module.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ModelFormatError(path, "state_dict", f"tensors matching sizes {sizes}",
                               str(exc).splitlines()[-1].strip()) from None
    return module.eval()


def _read_unet(path: Path):
    from rps_infer.nets import unet

    obj = _load(path)
    try:
        config = unet.UNetConfig(**obj["config"])
        model = unet.LipsyncUNet(config)
        model.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(path, "config/state_dict", "a lipsync U-Net checkpoint",
                               str(exc).splitlines()[-1].strip()[:200]) from None
    return model.eval()
