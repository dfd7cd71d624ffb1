"""Converters between Go JSON, PyTorch, Keras and ONNX.

Every conversion writes to a temp file beside the target, proves parity of the new
file against its source (at batch sizes 1, 3 and 64, on generated or the user's own
inputs), and only then renames it into place (:func:`rps_infer.convert.proof.write_proven`).
On a parity failure no output file exists and the :class:`~rps_infer.errors.ParityError`
carries the comparison report.

- To ONNX: any PyTorch network (the project's own, TorchScript with the legacy exporter,
  a ``torch.export`` program, a user class with its ``state_dict``) through PyTorch's
  exporter; any Keras model (``.keras``, ``.h5``) through Keras 3's own exporter; a
  Go JSON MLP through PyTorch. Names are kept.
- To PyTorch / Keras / Go JSON: any file that carries the RPS MLP's weights (Go JSON, the
  project's ``.pt``, a Keras MLP, an ONNX graph of that MLP), rebuilt from them.

Anything else is refused with one line saying what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rps_infer.backends import registry
from rps_infer.convert.proof import write_proven
from rps_infer.errors import UnsupportedModelError
from rps_infer.formats import FORMAT_LABELS, ModelFile, ModelHints, open_model
from rps_infer.inputs import InputChoice
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
    exporter: str | None = None,
    opset: int | None = None,
    kind: Kind | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | None = None,
    hints: ModelHints | None = None,
    inputs: InputChoice | None = None,
) -> Conversion:
    """Convert ``source`` to format ``to`` (onnx, torch, keras, gojson) at ``out``.

    ``out`` defaults to the source path with the target's suffix. ``exporter`` (``dynamo``,
    ``legacy``; default dynamo, legacy for TorchScript) and ``opset`` apply to PyTorch -> ONNX,
    ``opset`` to Keras -> ONNX. ``hints`` say what a file cannot (a ``state_dict``'s class,
    input shapes); ``inputs`` are the proof's (default: generated). ``tol`` defaults to the
    source's preset. Raises :class:`ParityError` (nothing written) when the result does not
    compute the same function, :class:`UnsupportedModelError` when it cannot be converted.
    """
    src = source if isinstance(source, ModelFile) else open_model(source, kind, hints)
    if to not in TARGETS:
        raise UnsupportedModelError(f"unknown target {to!r}; choose one of {', '.join(TARGETS)}")
    _check_convertible(src, to)
    tol = tol or src.tolerance
    out = Path(out) if out is not None else src.path.with_suffix(TARGETS[to])
    if out.suffix != TARGETS[to]:
        raise UnsupportedModelError(f"output {out} must end in {TARGETS[to]} for --to {to}")
    if out.resolve() == src.path.resolve():
        raise UnsupportedModelError(f"output {out} would overwrite its source")

    def prove(tmp: Path) -> ParityReport:
        candidate = open_model(tmp, src.kind)
        return compare_models(src, candidate, batch_sizes=batch_sizes, tol=tol, inputs=inputs,
                              candidate_label=f"{FORMAT_LABELS[candidate.format]} {out.name}")

    report = write_proven(out, lambda tmp: _write(src, to, tmp, exporter, opset), prove,
                          f"it does not match {src.label}")
    return Conversion(out, report)


def _check_convertible(src: ModelFile, to: str) -> None:
    """One line saying why ``src`` cannot become ``to``, or nothing."""
    if to == "onnx":
        if src.format == "onnx":
            raise UnsupportedModelError(f"{src.label} is already ONNX")
        if src.format == "savedmodel":
            raise UnsupportedModelError(f"{src.label}: Keras 3's ONNX exporter takes Keras models, not a "
                                        "SavedModel's signature (export the .keras model instead)")
        if src.format in ("gojson", "torch", "keras"):
            return
    elif src.weights is not None:
        return
    what = f"{src.label}: --to {to} rebuilds only the RPS MLP (Dense relu -> Dense softmax|sigmoid) from its weights"
    if src.format == "onnx":
        from rps_infer.formats.onnxfile import inspect

        ops = ", ".join(f"{op} x{n}" for op, n in list(inspect(src.path)["op_types"].items())[:6])
        raise UnsupportedModelError(f"{what}; this graph ({ops}) would need an ONNX-to-{to} converter "
                                    "such as onnx2torch, which rps_infer does not include")
    raise UnsupportedModelError(f"{what}; this {FORMAT_LABELS[src.format]} model is not one")


def _write(src: ModelFile, to: str, path: Path, exporter: str | None, opset: int | None) -> None:
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
        _export_torch(src, path, exporter, opset, meta)


def _export_torch(src: ModelFile, path: Path, exporter: str | None, opset: int | None, meta: dict) -> None:
    """A PyTorch network (or an MLP rebuilt in PyTorch from its weights) to ONNX."""
    from rps_infer.convert import onnx_export

    with registry.for_model(src, "pyt") as backend:
        if exporter is None:
            exporter = "legacy" if src.variant == "torchscript" else "dynamo"
        onnx_export.export_torch(backend.network, path, backend.input_specs, backend.output_names,
                                 exporter=exporter, opset=opset, metadata=meta)
