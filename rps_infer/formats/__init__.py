"""Model files of every supported format: Go JSON, ``.pt``, ``.keras``, ``.onnx``, and
native classifiers (scikit-learn ``.skops``, XGBoost's JSON). One module per format reads
and writes it.

:func:`open_model` detects the format from the suffix (an XGBoost JSON from its first
key) and reads what the file says about itself (kind, weights where the format carries
them). Which backends run a format is :mod:`rps_infer.backends.registry`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import Kind, MLPWeights

SUFFIX_FORMATS = {".json": "gojson", ".model": "gojson", ".pt": "torch", ".keras": "keras", ".onnx": "onnx",
                  ".skops": "skops"}
FORMAT_LABELS = {"gojson": "Go JSON", "torch": "PyTorch", "keras": "Keras", "onnx": "ONNX",
                 "skops": "scikit-learn", "xgboost": "XGBoost"}


@dataclass
class ModelFile:
    """A model file and what it declares: format, kind and (for MLP formats) weights."""

    path: Path
    format: str
    kind: Kind | None
    weights: MLPWeights | None
    metadata: dict[str, str]

    @property
    def family(self) -> str:
        """``mlp`` (the RPS policy/value nets), ``unet`` (lipsync), ``classifier`` or ``onnx`` (anything else)."""
        if self.weights is not None:
            return "mlp"
        return self.metadata.get("family", "onnx")

    @property
    def tolerance(self) -> str:
        """The tolerance preset that fits this model's outputs: the one the file names, else
        ``image-fp32`` for images and ``fp32`` for the rest."""
        return self.metadata.get("tolerance") or ("image-fp32" if self.family == "unet" else "fp32")

    @property
    def inputs(self) -> str | None:
        """The input generator the file names (``digits``), else None (chosen by shape)."""
        return self.metadata.get("inputs")

    @property
    def label(self) -> str:
        """E.g. ``ONNX model.onnx``."""
        return f"{FORMAT_LABELS[self.format]} {self.path.name}"


def detect_format(path: str | Path) -> str:
    """The format name for a path's suffix, or :class:`ModelFormatError`."""
    path = Path(path)
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt == "gojson" and path.suffix.lower() == ".json":
        from rps_infer.formats.native import native_kind

        fmt = "xgboost" if native_kind(path) == "xgboost" else fmt
    if fmt is None:
        raise ModelFormatError(path, "<suffix>", f"one of {', '.join(SUFFIX_FORMATS)}",
                               repr(path.suffix or "no suffix"))
    return fmt


def open_model(path: str | Path, kind: Kind | None = None) -> ModelFile:
    """Read a model file's declarations (and weights); the framework loads only for .pt/.keras."""
    path = Path(path)
    fmt = detect_format(path)
    weights: MLPWeights | None = None
    metadata: dict[str, str] = {}
    if fmt == "gojson":
        from rps_infer.formats import gojson

        weights = gojson.read(path, kind)
    elif fmt == "torch":
        from rps_infer.formats import torchfile

        if torchfile.family(path) == "unet":
            metadata = {"family": "unet"}
        else:
            weights = torchfile.read_weights(path)
    elif fmt == "keras":
        from rps_infer.formats import kerasfile

        weights = kerasfile.read_weights(path)
    elif fmt in ("skops", "xgboost"):
        if not path.is_file():
            raise ModelFormatError(path, "<file>", f"an existing {FORMAT_LABELS[fmt]} model", "no such file")
        metadata = {"family": "classifier"}
    else:
        from rps_infer.formats import onnxfile

        metadata = onnxfile.read_metadata(path)
    declared = weights.kind if weights is not None else metadata.get("kind")
    if kind is not None and weights is not None and kind != weights.kind and fmt != "gojson":
        raise ModelFormatError(path, "kind", kind, weights.kind)
    return ModelFile(path, fmt, kind or declared, weights, metadata)
