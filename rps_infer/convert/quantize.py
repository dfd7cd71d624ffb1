"""CPU INT8: ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on the
same kind of inputs the parity check uses.

The quantized model is compared with its fp32 source like every conversion (images: the
``image-int8`` preset, PSNR >= 35 dB; otherwise ``int8``) and written only if it passes.
Report its speed, don't assume it. ``quant_pre_process`` is not used: its symbolic shape
inference fails on dynamo exports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rps_infer.backends import registry
from rps_infer.convert.proof import write_proven
from rps_infer.errors import ModelFormatError
from rps_infer.formats import ModelFile, open_model
from rps_infer.inputs import InputChoice, InputFile, make_feeds
from rps_infer.verify import ParityReport, compare_backends


def calibration_reader(model: ModelFile, batches: int, seed: int, generator: str | None,
                       file: InputFile | None = None):
    """An ONNX Runtime ``CalibrationDataReader`` over ``batches`` batches of 4 generated inputs
    (seeds from ``seed`` on: other than the parity checks'), or over the user's own tensors
    (``file``) in batches of 4 rows."""
    from onnxruntime.quantization import CalibrationDataReader

    with registry.for_model(model) as reference:
        if file is not None:
            given = file.feeds(reference.input_specs)
            feeds = [{k: v[i:i + 4] for k, v in given.items()} for i in range(0, file.rows, 4)]
        else:
            feeds = [make_feeds(reference.input_specs, 4, seed=seed + i, generator=generator) for i in range(batches)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    return Reader()


def quantize_int8(source: str | Path, out: str | Path, *, tol: str | None = None, calibration_batches: int = 8,
                  batch_sizes: Sequence[int] = (1, 3), generator: str | None = None,
                  file: InputFile | None = None) -> ParityReport:
    """Quantize the fp32 ONNX ``source`` to INT8 QDQ at ``out``, calibrated on generated inputs or
    the user's own (``file``, which the proof then uses too); returns the parity report."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    src = open_model(source)
    if src.format != "onnx":
        raise ModelFormatError(src.path, "<file>", "an fp32 ONNX model (convert it first: rps-infer convert "
                               "--to onnx)", src.label)
    tol = tol or ("image-int8" if src.family == "unet" else "int8")
    reader = calibration_reader(src, calibration_batches, 1000, generator, file)

    def write(tmp: Path) -> None:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint at WARNING
        try:
            quantize_static(str(src.path), str(tmp), reader, quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)

    def prove(tmp: Path) -> ParityReport:
        with registry.for_model(src) as reference, registry.for_model(open_model(tmp)) as candidate:
            return compare_backends(reference, candidate, batch_sizes=batch_sizes, tol=tol,
                                    inputs=InputChoice(generator, file=file), reference_label=src.label,
                                    candidate_label=f"INT8 {Path(out).name}")

    return write_proven(out, write, prove, f"the INT8 model does not match {src.label}")
