"""Converters between Go JSON, PyTorch (.pt), Keras (.keras) and ONNX.

Every conversion writes to a temp file beside the target, proves parity of the
new file against its source on realistic positions at batch sizes 1, 3 and 64,
and only then renames it into place (:func:`rps_infer.convert.proof.write_proven`). On a
parity failure no output file exists and the :class:`~rps_infer.errors.ParityError`
carries the comparison report.

Files are read and written by :mod:`rps_infer.formats` (one module per format); ONNX
exports are :mod:`rps_infer.convert.onnx_export`.
Conversions into ONNX use PyTorch's exporter unless the source is a Keras file,
which goes through Keras 3's own exporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rps_infer.convert.proof import write_proven
from rps_infer.errors import UnsupportedModelError
from rps_infer.formats import FORMAT_LABELS, ModelFile, open_model
from rps_infer.nets.mlp import Kind
from rps_infer.verify import DEFAULT_BATCH_SIZES, ParityReport, compare_models

TARGETS = {"onnx": ".onnx", "torch": ".pt", "keras": ".keras", "gojson": ".json"}


@dataclass
class Conversion:
    """What :func:`convert` wrote and the parity report that allowed it."""

    path: Path
    report: ParityReport


def convert(
    source: str | Path | ModelFile,
    to: str,
    out: str | Path | None = None,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
    kind: Kind | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | None = None,
) -> Conversion:
    """Convert ``source`` to format ``to`` (onnx, torch, keras, gojson) at ``out``.

    ``out`` defaults to the source path with the target's suffix. ``exporter`` and
    ``opset`` apply to PyTorch -> ONNX (``dynamo`` or ``legacy``) and ``opset`` to
    Keras -> ONNX. ``tol`` defaults to the source's preset (``fp32``; ``image-fp32`` for
    the U-Net). Raises :class:`ParityError` (nothing written) when the result does not
    compute the same function.
    """
    src = source if isinstance(source, ModelFile) else open_model(source, kind)
    if to not in TARGETS:
        raise UnsupportedModelError(f"unknown target {to!r}; choose one of {', '.join(TARGETS)}")
    if src.weights is None and not (src.family == "unet" and to == "onnx"):
        raise UnsupportedModelError(f"{src.label}: only Go JSON, .pt and .keras MLPs (and a .pt U-Net to ONNX) "
                                    "can be converted")
    tol = tol or src.tolerance
    out = Path(out) if out is not None else src.path.with_suffix(TARGETS[to])
    if out.suffix != TARGETS[to]:
        raise UnsupportedModelError(f"output {out} must end in {TARGETS[to]} for --to {to}")
    if out.resolve() == src.path.resolve():
        raise UnsupportedModelError(f"output {out} would overwrite its source")

    def prove(tmp: Path) -> ParityReport:
        candidate = open_model(tmp, src.kind)
        return compare_models(src, candidate, batch_sizes=batch_sizes, tol=tol,
                              candidate_label=f"{FORMAT_LABELS[candidate.format]} {out.name}")

    report = write_proven(out, lambda tmp: _write(src, to, tmp, exporter, opset), prove,
                          f"it does not match {src.label}")
    return Conversion(out, report)


def _write(src: ModelFile, to: str, path: Path, exporter: str, opset: int | None) -> None:
    weights = src.weights
    meta = {"source": src.path.name, "family": src.family}
    if weights is not None:
        meta |= {"kind": weights.kind, "sizes": f"{weights.input_size},{weights.hidden_size},{weights.output_size}"}
    if to == "torch":
        from rps_infer.formats import torchfile

        torchfile.write(weights, path)
    elif to == "keras":
        from rps_infer.formats import kerasfile

        kerasfile.write(weights, path)
    elif to == "gojson":
        from rps_infer.formats import gojson

        gojson.write(weights, path)
    elif src.format == "keras":
        from rps_infer.convert import onnx_export
        from rps_infer.formats import kerasfile

        onnx_export.export_keras(kerasfile.read_model(src.path), path, opset=opset, metadata=meta)
    else:
        from rps_infer.convert import onnx_export
        from rps_infer.formats import torchfile
        from rps_infer.nets import torch_mlp

        module = torchfile.read_module(src.path) if src.format == "torch" else torch_mlp.build(weights)
        onnx_export.export_torch(module, path, exporter=exporter, opset=opset, metadata=meta)
