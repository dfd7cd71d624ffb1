"""The ``.pt`` format: a state_dict plus metadata, read back with ``weights_only=True``
(never unpickling arbitrary objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import KINDS, MLPWeights

FORMAT_TAG = "rps_infer.mlp"
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


def read_state(path: str | Path) -> dict[str, Any]:
    """Load and validate the checkpoint dict (tensors stay torch tensors)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing .pt file", "no such file")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of many types
        raise ModelFormatError(path, "<file>", "a torch checkpoint loadable with weights_only=True",
                               str(exc).splitlines()[0][:200]) from None
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


def read_weights(path: str | Path) -> MLPWeights:
    """The float64 weights stored in an rps_infer ``.pt`` file."""
    obj = read_state(path)
    state = {k: v.double().numpy() for k, v in obj["state_dict"].items()}
    return MLPWeights.from_torch_state(obj["kind"], state)


def read_module(path: str | Path):  # -> TorchMLP
    """A :class:`~rps_infer.nets.torch_mlp.TorchMLP` in eval mode, loaded from ``path``."""
    from rps_infer.nets import torch_mlp

    obj = read_state(path)
    sizes = obj["sizes"]
    module = torch_mlp.TorchMLP(obj["kind"], *sizes)
    try:
        module.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ModelFormatError(path, "state_dict", f"tensors matching sizes {sizes}",
                               str(exc).splitlines()[-1].strip()) from None
    return module.eval()
