"""``rps-infer quantize``: CPU INT8 (QDQ) quantization of an ONNX model, parity proven."""

from __future__ import annotations

import argparse
from pathlib import Path

from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("quantize", help="CPU INT8 (QDQ) quantization of an ONNX model, parity proven",
                       description="Quantize an fp32 ONNX model with ONNX Runtime static quantization (QDQ, "
                       "per-channel weights), calibrated on generated inputs; written only if it passes the "
                       "int8 preset (image-int8: PSNR >= 35 dB for the U-Net).")
    p.add_argument("model", metavar="MODEL.onnx", type=common.existing_path)
    p.add_argument("--out", type=common.writable_file, help="output path (default: MODEL.int8.onnx)")
    p.add_argument("--inputs", type=_generator_or_file, metavar="GENERATOR|FILE.npz",
                   help="calibration inputs: a generator (rps-positions, uniform, digits; default: by shape) or your "
                   "own tensors (an .npz or a folder of .npy, also used by the parity proof)")


def _generator_or_file(text: str):
    from rps_infer.inputs import INPUT_GENERATORS

    return text if text in INPUT_GENERATORS else common.existing_path(text)


def run(args: argparse.Namespace) -> int:
    """Quantize and print what was written."""
    from rps_infer.convert.quantize import quantize_int8

    source = Path(args.model)
    out = args.out or source.with_suffix(".int8.onnx")
    from rps_infer.inputs import InputFile

    own = args.inputs is not None and not isinstance(args.inputs, str)
    report = quantize_int8(source, out, generator=None if own else args.inputs,
                           file=InputFile(args.inputs) if own else None)
    psnr = [o.psnr_db for r in report.results.values() for o in r.outputs if o.psnr_db is not None]
    detail = f", PSNR >= {min(psnr):.1f} dB" if psnr else ""
    print(f"wrote {out} (parity proven: max abs error {report.max_abs_error():.3g}{detail})")
    return 0
