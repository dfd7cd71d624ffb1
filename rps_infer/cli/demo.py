"""``rps-infer demo``: build the zoo and print parity matrices."""

from __future__ import annotations

import argparse
from pathlib import Path

SHARED_MODELS = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "neural_rps"


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("demo", help="build the zoo and print parity matrices",
                       description="Build the bundled models and print, for them and for every Go file "
                       "in ../shared/neural_rps, the max abs error between every pair of numpy / "
                       "PyTorch / Keras / ONNX-from-PyTorch / ONNX-from-Keras.")
    p.add_argument("--shared", type=Path, default=SHARED_MODELS,
                   help=f"folder of Go-trained .model files (default: {SHARED_MODELS})")


def run(args: argparse.Namespace) -> int:
    """0 when every pair agrees, else 1."""
    from rps_infer.demo import run as run_demo

    return 0 if run_demo(args.shared) else 1
