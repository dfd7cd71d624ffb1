"""Model files of every supported format, recognised safely (nothing is ever unpickled):

- Go JSON (``.json``/``.model``), ONNX (``.onnx``, external data included);
- PyTorch, recognised by content whatever the extension (``.pt``, ``.pth``, ``.pt2``,
  ``.tar``, ``.ckpt``): the project's own wrapper, TorchScript, a ``torch.export``
  program, or a ``state_dict`` checkpoint (given a class: :class:`ModelHints`);
- Keras 3 (``.keras``, legacy ``.h5``) and TensorFlow SavedModel folders;
- native classifiers (scikit-learn ``.skops``, XGBoost's JSON).

:func:`open_model` reads what a file says about itself (format, variant, kind, MLP
weights where it carries them, metadata). One module per format reads and writes it;
which backends run a format is :mod:`rps_infer.backends.registry`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import Kind, MLPWeights

SUFFIX_FORMATS = {".json": "gojson", ".model": "gojson", ".onnx": "onnx", ".skops": "skops",
                  ".pt": "torch", ".pth": "torch", ".pt2": "torch", ".tar": "torch", ".ckpt": "torch",
                  ".keras": "keras", ".h5": "keras", ".hdf5": "keras"}
FORMAT_LABELS = {"gojson": "Go JSON", "torch": "PyTorch", "keras": "Keras", "onnx": "ONNX",
                 "skops": "scikit-learn", "xgboost": "XGBoost", "savedmodel": "TensorFlow SavedModel"}


@dataclass(frozen=True)
class ModelHints:
    """What a file cannot say about itself.

    Attributes:
        torch_model: ``"package.module:ClassName"`` of the network a ``state_dict`` belongs to.
        torch_kwargs: the class's constructor arguments.
        python_path: folders the class's module is imported from (besides the current one).
        input_shapes: input name -> shape; the first dim is the batch and stays dynamic
            unless ``static_batch``. Models that know their inputs need none.
        static_batch: keep the first dim of ``input_shapes`` as given.
    """

    torch_model: str | None = None
    torch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    python_path: tuple[Path, ...] = ()
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    static_batch: bool = False


@dataclass
class ModelFile:
    """A model file and what it declares: format (and variant), kind, MLP weights, metadata."""

    path: Path
    format: str
    kind: Kind | None
    weights: MLPWeights | None
    metadata: dict[str, str]
    variant: str | None = None  # torch: wrapper, torchscript, export, state_dict; keras: keras, h5
    hints: ModelHints = field(default_factory=ModelHints)

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
    """The format of ``path``: a SavedModel folder, else by suffix (an XGBoost JSON by its first
    key); PyTorch variants are told apart by content later. Otherwise a :class:`ModelFormatError`."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelFormatError(path, "<file>", "a model file or a TensorFlow SavedModel folder",
                               "a folder without saved_model.pb")
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt == "gojson" and path.suffix.lower() == ".json":
        from rps_infer.formats.native import native_kind

        fmt = "xgboost" if native_kind(path) == "xgboost" else fmt
    if fmt is None:
        raise ModelFormatError(path, "<suffix>", f"one of {', '.join(SUFFIX_FORMATS)} or a SavedModel folder",
                               repr(path.suffix or "no suffix"))
    return fmt


def open_model(path: str | Path, kind: Kind | None = None, hints: ModelHints | None = None) -> ModelFile:
    """Read a model file's declarations (and MLP weights where it carries them)."""
    path = Path(path)
    hints = hints or ModelHints()
    fmt = detect_format(path)
    if fmt != "savedmodel" and not path.is_file():
        found = "a special file (not a regular file)" if path.exists() else "no such file"
        raise ModelFormatError(path, "<file>", f"an existing {FORMAT_LABELS[fmt]} file", found)
    if fmt != "savedmodel" and path.stat().st_size == 0:  # every loader has its own words for this
        raise ModelFormatError(path, "<file>", f"a non-empty {FORMAT_LABELS[fmt]} file", "an empty file (0 bytes)")
    weights, metadata, variant = _declarations(path, fmt, kind, hints)
    declared = weights.kind if weights is not None else metadata.get("kind")
    if kind is not None and weights is not None and kind != weights.kind and fmt != "gojson":
        raise ModelFormatError(path, "kind", kind, weights.kind)
    return ModelFile(path, fmt, kind or declared, weights, metadata, variant, hints)


def _declarations(path: Path, fmt: str, kind: Kind | None,
                  hints: ModelHints) -> tuple[MLPWeights | None, dict[str, str], str | None]:
    """(weights, metadata, variant) of a file of format ``fmt``."""
    if fmt == "gojson":
        from rps_infer.formats import gojson

        return gojson.read(path, kind), {}, None
    if fmt == "torch":
        from rps_infer.formats import torchfile

        return torchfile.declarations(path, hints)
    if fmt in ("keras", "savedmodel"):
        from rps_infer.formats import kerasfile

        return kerasfile.declarations(path)
    if fmt in ("skops", "xgboost"):
        return None, {"family": "classifier"}, None
    from rps_infer.formats import onnxfile

    return onnxfile.declarations(path)
