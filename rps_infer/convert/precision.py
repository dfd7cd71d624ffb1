"""Precision variants of an fp32 ONNX model: fp16 and INT8 artifacts, TensorRT calibration.

``--precision fp32|fp16|int8`` selects a variant. How a precision is realised depends
on the execution provider (:func:`rps_infer.runtime.open_backend` asks for it):

- TensorRT builds fp16 / INT8 engines from the fp32 graph itself: fp16 is a builder
  flag, INT8 needs a calibration table (:func:`tensorrt_calibration`).
- Every other provider runs a converted graph: ``<stem>.cache/fp16.onnx`` (weights and
  activations in float16, inputs and outputs kept float32 so clients do not change)
  or INT8 (static QDQ, :mod:`rps_infer.convert.quantize`).

Variants are built into ``<stem>.cache/`` beside their source on first use (so a
folder of models served as a repository does not grow extra models), proven against it with the
precision's tolerance preset, and rebuilt when the source is newer.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from rps_infer.backends import registry
from rps_infer.backends.spec import CALIBRATION_TABLE, variant_path
from rps_infer.compare import tolerance_for_precision
from rps_infer.convert.proof import write_proven
from rps_infer.convert.quantize import calibration_reader, quantize_int8
from rps_infer.formats import open_model
from rps_infer.verify import ParityReport, compare_backends


def precision_artifact(source: str | Path, precision: str, *, generator: str | None = None) -> Path:
    """The ``precision`` variant of the fp32 ONNX ``source``, built (parity proven) if missing or stale."""
    source = Path(source)
    out = variant_path(source, precision)
    if out == source or (out.is_file() and out.stat().st_mtime >= source.stat().st_mtime):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if precision == "fp16":
        to_float16(source, out, generator=generator)
    else:
        quantize_int8(source, out, generator=generator)
    return out


def to_float16(source: str | Path, out: str | Path, *, tol: str | None = None,
               batch_sizes: Sequence[int] = (1, 3), generator: str | None = None) -> ParityReport:
    """Convert the fp32 ONNX ``source`` to float16 at ``out`` (float32 inputs and outputs);
    written only if it matches ``source`` within the fp16 preset."""
    import onnx
    from onnxconverter_common import float16

    src = open_model(source)
    tol = tol or tolerance_for_precision("image-fp32" if src.family == "unet" else "fp32", "fp16")

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # It warns for every weight below fp16's range it rounds; the parity check
            # judges what that rounding did to the outputs.
            warnings.simplefilter("ignore", UserWarning)
            model = float16.convert_float_to_float16(onnx.load(str(src.path)), keep_io_types=True)
        onnx.save(model, str(tmp))

    def prove(tmp: Path) -> ParityReport:
        with registry.for_model(src) as reference, registry.for_model(open_model(tmp)) as candidate:
            return compare_backends(reference, candidate, batch_sizes=batch_sizes, tol=tol, generator=generator,
                                    reference_label=src.label, candidate_label=f"fp16 {Path(out).name}")

    return write_proven(out, write, prove, f"the fp16 model does not match {src.label}")


def tensorrt_calibration(source: str | Path, cache_dir: str | Path, *, batches: int = 8,
                         generator: str | None = None) -> Path:
    """Write the INT8 calibration table for TensorRT into ``cache_dir`` (once; reused after).

    Activation ranges come from running the fp32 model on the CPU over ``batches``
    batches of 4 realistic inputs (the same generator the parity checks use, other
    seeds). TensorRT reads the table from its engine cache directory.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.quant_utils import write_calibration_table

    cache_dir = Path(cache_dir)
    table = cache_dir / CALIBRATION_TABLE
    source = Path(source)
    if table.is_file() and table.stat().st_mtime >= source.stat().st_mtime:
        return table
    cache_dir.mkdir(parents=True, exist_ok=True)
    reader = calibration_reader(open_model(source), batches, 2000, generator)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        calibrator = create_calibrator(str(source), augmented_model_path=str(Path(work) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        write_calibration_table({name: ranges[name] for name in ranges.data}, dir=work)
        # Publish the three files only when all exist; the flatbuffers table last.
        for name in ("calibration.json", "calibration.cache", CALIBRATION_TABLE):
            (Path(work) / name).replace(cache_dir / name)
    return table
