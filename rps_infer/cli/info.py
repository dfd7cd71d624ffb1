"""``rps-infer info``: a model's format, kind, sizes, inputs and outputs."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("info", help="show a model's format, kind, sizes, inputs and outputs")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true")


def describe(path) -> dict:
    """What ``info`` shows, as a dict."""
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend

    model = open_model(path)
    info: dict = {"path": str(model.path), "format": model.format, "kind": model.kind}
    if model.weights is not None:
        w = model.weights
        info["sizes"] = {"input": w.input_size, "hidden": w.hidden_size, "output": w.output_size}
    with open_backend(model) as backend:
        info["inputs"] = [spec.describe() for spec in backend.input_specs]
        info["outputs"] = [spec.describe() for spec in backend.output_specs]
        info["runtime"] = {k: v for k, v in backend.describe().items() if k not in ("inputs", "outputs")}
    info["metadata"] = model.metadata
    return info


def run(args: argparse.Namespace) -> int:
    """Print the description (as JSON with ``--json``)."""
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:9} {value}")
    return 0
