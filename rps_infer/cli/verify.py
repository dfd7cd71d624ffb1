"""``rps-infer verify``: prove two model files (or a file and a served model) compute the same function."""

from __future__ import annotations

import argparse
import json
import sys

from rps_infer.cli import args as common
from rps_infer.errors import RpsInferError


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("verify", help="prove two model files compute the same function",
                       description="Run REFERENCE and CANDIDATE (any supported model file: Go JSON, PyTorch, "
                       "Keras, SavedModel, ONNX) on the same inputs (generated, or --inputs) and compare, layer by "
                       "layer where the frameworks expose layers. Exit 0 when they agree, 1 when they don't, "
                       "2 for unusable input.")
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("candidate", metavar="CANDIDATE", nargs="?", help="a model file (or use --target)")
    p.add_argument("--target", type=common.target, metavar="HOST:PORT[,HOST:PORT...]",
                   help="check the model a running server serves instead of a file (plaintext gRPC), on the same "
                   "inputs and with the same verdict; a comma list or dns:///NAME:PORT checks replicas "
                   "(round robin: each batch may come from another one)")
    p.add_argument("--model", help="with --target: the served model (neural API: policy or value)")
    p.add_argument("--api", choices=["neural", "v2"], default="neural",
                   help="with --target: NeuralService BatchPredict (default) or Open Inference Protocol ModelInfer")
    common.add_tolerance(p)
    p.add_argument("--layers", action="store_true", help="print the per-layer table on success too")
    common.add_parity_batches(p)
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="run CANDIDATE on this device of its runtime: cpu (default), cuda, tensorrt, ... or auto: "
                   "the best one that starts here and agrees with the CPU, printed with why each better one "
                   "was skipped")
    p.add_argument("--kind", choices=["policy", "value"], help="override the kind of a Go JSON file")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default 0)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    common.add_model_hints(p)
    common.add_inputs(p)


def run(args: argparse.Namespace) -> int:
    """Compare, print the report; 0 when they agree, 1 when they don't."""
    from rps_infer.compare import tolerance
    from rps_infer.formats import open_model
    from rps_infer.verify import compare_models

    if (args.candidate is None) == (args.target is None):
        raise RpsInferError("give a CANDIDATE file or --target HOST:PORT (one of them)")
    if args.target and args.device != "cpu":
        raise RpsInferError("--device applies to a CANDIDATE file; a served model runs where its server put it")
    if args.target and not args.model:
        raise RpsInferError("--target needs --model NAME (the neural API serves policy and value)")
    hints = common.hints_of(args)
    try:
        reference = open_model(args.reference, args.kind, hints)
        candidate = open_model(args.candidate, args.kind, hints) if args.candidate else None
        tol = tolerance(args.tolerance or (candidate or reference).tolerance, args.atol, args.rtol)
    except KeyError as exc:
        raise RpsInferError(exc.args[0]) from None
    inputs = common.inputs_of(args, reference.inputs or (candidate.inputs if candidate else None))
    if candidate is not None:
        report = compare_models(reference, candidate, batch_sizes=args.batch_sizes, tol=tol, seed=args.seed,
                                inputs=inputs, candidate_backend=_on_device(candidate, args.device))
        if report.device_choice:
            print(report.device_choice, file=sys.stderr)
    else:
        report = _through_server(args, reference, tol, inputs)
    if args.save_outputs:
        save_outputs(report, args.save_outputs)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render(layers=args.layers))
        for line in report.failures():
            print(f"mismatch: {line}", file=sys.stderr)
    return 0 if report else 1


def _on_device(candidate, device: str):
    """The candidate's own runtime on ``device`` (``auto``: chosen, activated); None for the CPU."""
    from rps_infer.backends import registry
    from rps_infer.runtime import open_backend

    return None if device == "cpu" else open_backend(candidate, f"{registry.default_for(candidate.format)}-{device}")


def save_outputs(report, path) -> None:
    """Both sides' outputs of every batch, as ``reference.NAME.bB`` / ``candidate.NAME.bB`` in an .npz."""
    write_npz(path, {f"{side}.{name}.b{batch}": array for batch, result in report.results.items()
                     for side, outputs in (("reference", result.expected), ("candidate", result.got))
                     for name, array in outputs.items()})


def write_npz(path, arrays: dict) -> None:
    """``arrays`` (name -> array) to an .npz, atomically."""
    import numpy as np

    from rps_infer.util import atomic_write

    def write(tmp) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def _through_server(args: argparse.Namespace, reference, tol, inputs):
    from rps_infer.backends.remote import RemoteBackend
    from rps_infer.runtime import open_backend
    from rps_infer.verify import compare_backends, model_kind

    with open_backend(reference) as ref, RemoteBackend(args.target, args.model, args.api) as served:
        return compare_backends(ref, served, batch_sizes=args.batch_sizes, tol=tol, weights=reference.weights,
                                kind=model_kind(reference), seed=args.seed, inputs=inputs,
                                reference_label=reference.label,
                                candidate_label=f"{args.model} at {args.target} ({args.api} API)")
