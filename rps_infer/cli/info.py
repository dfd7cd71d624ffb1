"""``rps-infer info``: what a model file is: format, kind, inputs and outputs as written, size;
for ONNX also opsets, IR version, producer, op types, initialisers, checker and shape
inference (as Polygraphy's ``inspect model`` shows them)."""

from __future__ import annotations

import argparse
import json

from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("info", help="show a model's format, inputs and outputs, size (ONNX: opsets, ops, checks)")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true")
    common.add_model_hints(p)


def describe(path, hints=None) -> dict:
    """What ``info`` shows, as a dict."""
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend

    model = open_model(path, hints=hints)
    info: dict = {"path": str(model.path), "format": model.format, "variant": model.variant, "kind": model.kind}
    if model.weights is not None:
        w = model.weights
        info["sizes"] = {"input": w.input_size, "hidden": w.hidden_size, "output": w.output_size}
    if model.format == "onnx":
        from rps_infer.formats.onnxfile import inspect

        info["graph"] = inspect(model.path)
    with open_backend(model) as backend:
        info["inputs"] = [spec.describe() for spec in backend.input_specs]
        info["outputs"] = [spec.describe() for spec in backend.output_specs]
        info["parameters"] = _parameters(model, backend, info)
        info["runtime"] = {k: v for k, v in backend.describe().items() if k not in ("inputs", "outputs")}
    info["metadata"] = model.metadata
    return info


def _parameters(model, backend, info: dict) -> int | None:
    if model.format == "onnx":
        return info["graph"]["parameters"]
    if model.format == "torch":
        from rps_infer.formats.torchfile import parameter_count

        return parameter_count(backend.network)
    if model.format in ("keras", "savedmodel"):
        from rps_infer.formats.kerasfile import parameter_count

        return parameter_count(backend.model)
    if model.weights is not None:
        w = model.weights
        return int(w.w1.size + w.b1.size + w.w2.size + w.b2.size)
    return None


def run(args: argparse.Namespace) -> int:
    """Print the description (as JSON with ``--json``)."""
    info = describe(args.model, common.hints_of(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    graph = info.pop("graph", {})
    for key, value in {**info, **graph}.items():
        print(f"{key:16} {value}")
    return 0
