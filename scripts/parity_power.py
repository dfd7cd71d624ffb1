"""How small a planted change ``verify`` catches on each Go-trained file (a benchmark-style
script, not a test): the output layer's and the hidden layer's weights scaled by 1 + d for
d = 1e-2 ... 1e-7, on a correct dynamo ONNX export. Prints a Markdown table.

    .venv/bin/python scripts/parity_power.py [../shared/neural_rps]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from rps_infer.convert import convert
from rps_infer.formats import open_model
from rps_infer.verify import compare_models

STEPS = [10.0**-k for k in range(2, 8)]


def _scaled(export: Path, out: Path, layer: int, k: float) -> Path:
    model = onnx.load(str(export))
    init = [i for i in model.graph.initializer if len(i.dims) == 2][layer]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(k), init.name))
    onnx.save(model, str(out))
    return out


def smallest_caught(reference, export: Path, tmp: Path, layer: int) -> str:
    """The smallest d in STEPS whose x(1 + d) scale of ``layer`` (0 hidden, -1 output) fails verify."""
    caught = None
    for d in STEPS:
        if compare_models(reference, open_model(_scaled(export, tmp / "s.onnx", layer, 1 + d))):
            break
        caught = d
    return "none" if caught is None else f"x{1 + caught:.{max(2, -int(np.log10(caught)))}f}"


def main(folder: str = str(Path(__file__).resolve().parents[2] / "shared" / "neural_rps")) -> None:
    """Print the table for every ``*.model`` in ``folder``."""
    print("| model | output layer caught down to | hidden layer caught down to "
          "| correct export: logits max abs error |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(folder).glob("*.model")):
            reference = open_model(path)
            export = convert(reference, "onnx", Path(tmp) / f"{path.stem}.onnx").path
            report = compare_models(reference, open_model(export))
            logits = next(r for r in report.shown.layers if r.layer == "logits")
            print(f"| {path.stem} | {smallest_caught(reference, export, Path(tmp), -1)} | "
                  f"{smallest_caught(reference, export, Path(tmp), 0)} | {logits.report.max_abs:.2g} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
