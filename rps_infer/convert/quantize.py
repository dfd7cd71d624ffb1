"""CPU INT8: ONNX Runtime static quantization (QDQ, per-channel weights) calibrated on the
same kind of inputs the parity check uses.

The quantized model is compared with its fp32 source like every conversion (images: the
``image-int8`` preset, PSNR >= 35 dB; otherwise ``int8``) and written only if it passes.
Report its speed, don't assume it. ``quant_pre_process`` is not used: its symbolic shape
inference fails on dynamo exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rps_infer.errors import ParityError
from rps_infer.formats import open_model
from rps_infer.inputs import make_feeds
from rps_infer.util import atomic_write
from rps_infer.verify import ParityReport, compare_backends


def quantize_int8(source: str | Path, out: str | Path, *, tol: str | None = None, calibration_batches: int = 8,
                  batch_sizes: Sequence[int] = (1, 3), generator: str | None = None) -> ParityReport:
    """Quantize the fp32 ONNX ``source`` to INT8 QDQ at ``out``; returns the parity report.

    Calibration: ``calibration_batches`` batches of 4 from the input generator (seeds
    other than the parity check's).
    """
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src = open_model(source)
    tol = tol or ("image-int8" if src.family == "unet" else "int8")
    report: ParityReport | None = None
    with src.backend() as reference:
        calibration = [make_feeds(reference.input_specs, 4, seed=1000 + i, generator=generator)
                       for i in range(calibration_batches)]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter(calibration)

            def get_next(self):
                return next(self.batches, None)

        def write_and_prove(tmp: Path) -> None:
            nonlocal report
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint at WARNING
            try:
                quantize_static(str(src.path), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                root.setLevel(level)
            with open_model(tmp).backend() as candidate:
                report = compare_backends(reference, candidate, batch_sizes=batch_sizes, tol=tol,
                                          generator=generator, reference_label=src.label,
                                          candidate_label=f"INT8 {Path(out).name}")
            if not report:
                raise ParityError(f"refusing to write {out}: the INT8 model does not match {src.label}", report)

        atomic_write(out, write_and_prove)
    return report
