"""``rps-infer quantize``: CPU INT8 (QDQ) quantization of an ONNX model, parity proven."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("quantize", help="CPU INT8 (QDQ) quantization of an ONNX model, parity proven",
                       description="Quantize an fp32 ONNX model with ONNX Runtime static quantization (QDQ, "
                       "per-channel weights), calibrated on generated inputs; written only if it passes the "
                       "int8 preset (image-int8: PSNR >= 35 dB for the U-Net).")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--out", type=Path, help="output path (default: MODEL.int8.onnx)")
    p.add_argument("--inputs", choices=["rps-positions", "uniform"], help="input generator (default: by shape)")


def run(args: argparse.Namespace) -> int:
    """Quantize and print what was written."""
    from rps_infer.convert.quantize import quantize_int8

    source = Path(args.model)
    out = args.out or source.with_suffix(".int8.onnx")
    report = quantize_int8(source, out, generator=args.inputs)
    psnr = [o.psnr_db for r in report.results.values() for o in r.outputs if o.psnr_db is not None]
    detail = f", PSNR >= {min(psnr):.1f} dB" if psnr else ""
    print(f"wrote {out} (parity proven: max abs error {report.max_abs_error():.3g}{detail})")
    return 0
