"""The A/B gate's worker process: builds the described cases in one source tree and times them.

The worker is started as ``python -m rps_infer _bench-worker --tree DIR [--threads N]
[--tensorflow] [--cpu K] [--installed] [--models PATH]`` (a stable entry point: older trees
are started the same way) and speaks JSON lines (protocol 1): it first writes
``{"protocol": 1, "rps_infer": <file>, ...}``, then answers one request per line::

    {"op": "build", "all_models": false, "models": [...]} -> {"ok": true, "built": [...]}  (models: optional)
    {"op": "prepare", "id": ID, "case": {...}}            -> {"ok": true, "estimate": s, "info": {...}}
                                                             {"ok": false, "status": "unsupported" |
                                                              "unavailable" | "parity" | "error", "reason": ...}
    {"op": "time", "id": ID, "iterations": I, "rounds": R, "warmup": W}
                                                          -> {"ok": true, "samples": [seconds per call, ...]}
    {"op": "exit"}

Cases are described as in :mod:`rps_infer.bench.cases`; the suite is the declared models of
the project around the worker's folder (``--models`` overrides its manifest).

Two kinds of tree. One that carries its own ``rps_infer`` (this project's own repository)
is imported from the tree: the worker refuses to start (exit 2) unless every ``rps_infer``
module it loaded lies in ``--tree``, so an inherited ``PYTHONPATH`` never makes an A/B run
compare a tree with itself. A user's repository (``--installed``) holds only the user's
files: the worker imports the installed ``rps_infer`` and refuses any loaded from the tree.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rps_infer.bench.cases import (
    CaseBuilder,
    CaseParityError,
    CaseUnavailableError,
    CaseUnsupportedError,
    Prepared,
)

PROTOCOL = 1


# -- the worker process ------------------------------------------------------------------
def _time(fn: Callable[[], object], iterations: int, rounds: int, warmup: int) -> list[float]:
    """Per-call seconds of ``rounds`` timed rounds of ``iterations`` calls, after ``warmup`` rounds."""
    from rps_infer.bench.timing import Plan, measure

    return measure(fn, Plan(rounds=rounds, iterations=iterations, warmup=warmup)).tolist()


def _answer(builder: CaseBuilder, prepared: dict[str, Prepared], request: dict) -> dict:
    op = request.get("op")
    if op == "build":
        return {"ok": True, "built": builder.build_models(bool(request.get("all_models")), request.get("models"))}
    if op == "prepare":
        try:
            case = builder.prepare(request["case"])
        except CaseUnsupportedError as exc:
            return {"ok": False, "status": "unsupported", "reason": str(exc)}
        except CaseUnavailableError as exc:
            return {"ok": False, "status": "unavailable", "reason": str(exc)}
        except CaseParityError as exc:
            return {"ok": False, "status": "parity", "reason": str(exc)}
        prepared[request["id"]] = case
        # A full collection costs ~0.3 s with TensorFlow loaded: do it once here and freeze what
        # survives, so that no collection of setup garbage lands in a timed block.
        gc.collect()
        gc.freeze()
        from rps_infer.bench.timing import estimate

        return {"ok": True, "estimate": estimate(case.fn), "info": case.info}
    if op == "time":
        fn = prepared[request["id"]].fn
        return {"ok": True, "samples": _time(fn, int(request["iterations"]), int(request["rounds"]),
                                             int(request["warmup"]))}
    return {"ok": False, "status": "error", "reason": f"unknown op {op!r}"}


def _loaded_modules(tree: Path, inside: bool) -> list[str]:
    """``rps_infer`` modules (and the ``__main__`` that started this) loaded from outside ``tree``
    (``inside`` False: from inside it)."""
    found = []
    for name, module in list(sys.modules.items()):
        spec_name = getattr(getattr(module, "__spec__", None), "name", "") or ""
        if name.split(".")[0] != "rps_infer" and not spec_name.startswith("rps_infer"):
            continue
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(tree) is inside:
            found.append(f"{spec_name or name} from {Path(path).resolve()}")
    return found


def pin_process(cpu: int) -> None:
    """Every thread of this process on ``cpu`` (threads started later inherit it). Done after the
    imports, so that the workers of a run import on every CPU at once, not one after another."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), {cpu})


def suite_builder(threads: int, server_cpus: set[int] | None, manifest: Path | None) -> CaseBuilder:
    """A builder for the suite the project around this folder declares; a tree that declares
    none (a revision before ``rps-infer init``) builds nothing: its cases are new."""
    from rps_infer.errors import RpsInferError
    from rps_infer.project import Project

    try:
        entries = Project.find().models(manifest)
    except RpsInferError as exc:
        builder = CaseBuilder({}, threads, server_cpus)
        builder.missing = f"this tree declares no models ({exc})"
        return builder
    return CaseBuilder(entries, threads, server_cpus)


def main(argv: list[str] | None = None) -> int:
    """``python -m rps_infer _bench-worker``: serve requests on stdin until ``exit``."""
    parser = argparse.ArgumentParser(prog="python -m rps_infer _bench-worker")
    parser.add_argument("--tree", type=Path, required=True, help="the source tree whose files this worker times")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tensorflow", action="store_true", help="pin TensorFlow's threads (imports it)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="run on this CPU only; servers this worker starts get the other CPUs")
    parser.add_argument("--installed", action="store_true",
                        help="the tree holds no rps_infer: use the installed one (a user's repository)")
    parser.add_argument("--models", type=Path, default=None, help="the model manifest (default: the project's)")
    args = parser.parse_args(argv)
    server_cpus = None if args.cpu is None else os.sched_getaffinity(0) - {args.cpu} or None
    # The protocol owns the real stdout; anything a framework prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    package = sys.modules["rps_infer"]  # loaded with this module: the code under test

    tree = args.tree.resolve()
    hello = {"protocol": PROTOCOL, "rps_infer": str(Path(package.__file__).resolve()), "tree": str(tree),
             "pid": os.getpid(), "cwd": str(Path.cwd())}
    wrong = _loaded_modules(tree, inside=args.installed)
    if wrong:
        hello["error"] = f"imported {wrong[0]}, " + ("from the tree, not the installed rps_infer" if args.installed
                                                     else f"not from {tree}")
        channel.write(json.dumps(hello) + "\n")
        return 2
    from rps_infer.runtime import pin_threads

    pin_threads(args.threads, ("pyt", "tf") if args.tensorflow else ("pyt",))
    builder = suite_builder(args.threads, server_cpus, args.models)
    if args.cpu is not None:
        pin_process(args.cpu)
    prepared: dict[str, Prepared] = {}
    channel.write(json.dumps(hello) + "\n")
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            try:
                reply = _answer(builder, prepared, request)
            except Exception as exc:  # reported to the controller with its type; the worker goes on
                reply = {"ok": False, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            channel.write(json.dumps(reply) + "\n")
    finally:
        builder.close()
    return 0
