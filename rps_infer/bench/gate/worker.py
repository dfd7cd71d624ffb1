"""What the benchmark suite times, built from a case description; and the A/B gate's worker.

:class:`CaseBuilder` turns a case description (plain JSON data) into a timed callable,
after checking parity: the one definition of every timed case. The benchmark suite uses
it in-process; the A/B gate runs it in worker processes, one set per source tree, each
with that tree's own ``rps_infer``.

Case descriptions (protocol 1; keep them stable, the base revision's worker reads them)::

    {"kind": "latency", "model": "policy", "backend": "onnxrt-cpu", "batch": 1}
    {"kind": "calibration", "batch": 64}        # bare InferenceSession.run of the zoo policy
    {"kind": "keras_predict", "model": "policy"}  # Keras model.predict per call (reference)
    {"kind": "grpc", "server": "service" | "echo", "api": "neural" | "v2", "model": "value", "batch": 64}

The worker is started as ``python -m rps_infer _bench-worker --tree DIR [--threads N]
[--tensorflow] [--cpu K]`` (a stable entry point) and speaks JSON lines: it first writes
``{"protocol": 1, "rps_infer": <file>, ...}``, then answers one request per line:

    {"op": "build", "all_models": false, "models": [...]} -> {"ok": true, "built": [...]}  (models: optional)
    {"op": "prepare", "id": ID, "case": {...}}            -> {"ok": true, "estimate": s, "info": {...}}
                                                             {"ok": false, "status": "unsupported" |
                                                              "unavailable" | "parity" | "error", "reason": ...}
    {"op": "time", "id": ID, "iterations": I, "rounds": R, "warmup": W}
                                                          -> {"ok": true, "samples": [seconds per call, ...]}
    {"op": "exit"}

It refuses to start (exit 2) unless the ``rps_infer`` it imported lies in ``--tree``: an
inherited ``PYTHONPATH`` must never make an A/B run compare a tree with itself.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROTOCOL = 1
SERVED_MODELS = ("policy", "value", "unet-ci", "digits-logreg", "digits-rf", "digits-xgb")


class CaseUnsupportedError(Exception):
    """This tree cannot build the case (a model, backend or kind it does not know)."""


class CaseUnavailableError(Exception):
    """The case cannot run on this machine (no GPU, no provider)."""


class CaseParityError(Exception):
    """The timed callable does not compute the reference's function: it is never timed."""


@dataclass
class Prepared:
    """A case ready to time: the callable and what describes it (backend, versions)."""

    fn: Callable[[], object]
    info: dict = field(default_factory=dict)


class CaseBuilder:
    """Builds timed callables from case descriptions; keeps backends and servers for reuse.

    ``close`` deactivates every backend and stops every server it started.
    """

    def __init__(self, threads: int = 1, server_cpus: set[int] | None = None, zoo_path=None) -> None:
        import rps_infer.zoo as zoo

        self.threads = threads
        self.server_cpus = server_cpus  # where servers run (the timing client has its own core)
        self.zoo = zoo.load_zoo(zoo_path)
        self._backends: dict[tuple[str, str], object] = {}
        self._servers: dict[str, object] = {}

    def build_models(self, all_models: bool = False, names: list[str] | None = None) -> list[str]:
        """Build the zoo's CI models (every model with ``all_models``; only ``names`` when given,
        as far as this zoo has them) if not up to date."""
        import rps_infer.zoo as zoo

        entries = [e for e in self.zoo.values() if (e.ci or all_models) and (not names or e.name in names)]
        zoo.build(entries)
        return [e.name for e in entries]

    def entry(self, model: str):
        """The zoo entry, or :class:`CaseUnsupportedError`."""
        if model not in self.zoo:
            raise CaseUnsupportedError(f"model {model!r} is not in this tree's zoo")
        return self.zoo[model]

    def backend(self, model: str, spec: str):
        """An activated backend, shared by every case of that model and spec."""
        from rps_infer.backends.spec import BackendSpec
        from rps_infer.errors import ParityError, ProviderUnavailableError, RpsInferError

        key = (model, spec)
        if key not in self._backends:
            entry = self.entry(model)
            try:
                BackendSpec.parse(spec)
                self._backends[key] = entry.backend(spec, threads=self.threads).activate()
            except ProviderUnavailableError as exc:
                self._backends[key] = CaseUnavailableError(f"{spec} unavailable here: {exc}")
            except ParityError as exc:
                self._backends[key] = CaseParityError(f"{spec}: {str(exc).splitlines()[0]}")
            except RpsInferError as exc:
                self._backends[key] = CaseUnsupportedError(str(exc))
        found = self._backends[key]
        if isinstance(found, Exception):
            raise found
        return found

    def prepare(self, case: dict) -> Prepared:
        """The timed callable for ``case``, parity checked first."""
        kind = case.get("kind")
        builders = {"latency": self._latency, "calibration": self._calibration,
                    "keras_predict": self._keras_predict, "grpc": self._grpc}
        if kind not in builders:
            raise CaseUnsupportedError(f"unknown case kind {kind!r}")
        return builders[kind](case)

    def _latency(self, case: dict) -> Prepared:
        from rps_infer.inputs import make_feeds

        entry = self.entry(case["model"])
        backend = self.backend(case["model"], case["backend"])
        batch = int(case["batch"])
        feeds = make_feeds(backend.input_specs, batch, seed=batch, generator=entry.inputs)
        parity = entry.check_parity(backend, case["backend"], (batch,))
        if not parity:
            raise CaseParityError(str(parity))
        info = backend.describe()
        keys = ("backend", "device", "framework", "version", "active_providers", "threads", "intra_op_threads",
                "inter_op_threads", "precision", "io_binding", "compile", "channels_last")
        return Prepared(lambda: backend.infer(feeds), {k: info.get(k) for k in keys if k in info})

    def _calibration(self, case: dict) -> Prepared:
        import onnxruntime as ort

        from rps_infer.game import realistic_positions

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        session = ort.InferenceSession(str(self.entry("policy").onnx_path), options,
                                       providers=["CPUExecutionProvider"])
        batch = int(case["batch"])
        feeds = {"input": realistic_positions(batch, seed=batch)}
        return Prepared(lambda: session.run(None, feeds),
                        {"backend": "bare-onnxruntime", "device": "cpu", "intra_op_threads": 1})

    def _keras_predict(self, case: dict) -> Prepared:
        from rps_infer.formats import kerasfile
        from rps_infer.game import realistic_positions

        keras_model = kerasfile.read_model(self.entry(case["model"]).artifacts()["keras"])
        x = realistic_positions(1, seed=1)
        return Prepared(lambda: keras_model.predict(x, verbose=0), {"backend": "keras-predict", "device": "cpu"})

    def _grpc(self, case: dict) -> Prepared:
        from rps_infer.bench.loadgen.generator import LoadSpec, make_call, payload
        from rps_infer.client import decode_response
        from rps_infer.compare import compare

        api, model, batch = case["api"], case["model"], int(case["batch"])
        entry = self.entry(model)
        server = self._server(case["server"])
        spec = LoadSpec(server.target, api, model, batch, 1, 0)
        call, message, channel = make_call(spec)
        answer = call(message, timeout=30)
        if case["server"] == "service":
            want = entry.backend("onnxrt-cpu").infer(payload(model, batch))
            if api == "v2":
                got = decode_response(answer)
            else:
                outputs = [answer] if batch == 1 else answer.outputs
                got = {"output": np.array([list(o.probabilities) or [o.value] for o in outputs], np.float32)}
            report = compare(want, got, entry.tolerance)
            if not report:
                raise CaseParityError(f"{api} {model} b{batch} over gRPC: {report}")
        self._channels = [*getattr(self, "_channels", []), channel]
        return Prepared(lambda: call(message, timeout=30),
                        {"backend": f"grpc-{case['server']}", "api": api, "rpc": spec.rpc, "model": model})

    def _server(self, kind: str):
        from rps_infer.serving.launch import ServerProcess, echo_command, serve_command

        if kind not in ("service", "echo"):
            raise CaseUnsupportedError(f"unknown server {kind!r}")
        if kind not in self._servers:
            models = [f"{name}={self.zoo[name].onnx_path}" for name in SERVED_MODELS if name in self.zoo]
            if kind == "echo":
                command = echo_command(*(arg for m in models for arg in ("--model", m)))
            else:
                args = ["--policy", models[0].split("=", 1)[1], "--value", models[1].split("=", 1)[1]]
                command = serve_command(*args, *(arg for m in models[2:] for arg in ("--model", m)))
            self._servers[kind] = self._start_on_server_cpus(lambda: ServerProcess(command))
        return self._servers[kind]

    def _start_on_server_cpus(self, start):
        """``start()`` with this thread moved to the servers' CPUs for the moment: a child
        inherits the affinity of the thread that forks it. (No ``preexec_fn``: it is unsafe in
        a process with threads, and a gRPC client has them; seen: an echo server dying on start
        with "epoll_wait error: Bad file descriptor".)"""
        if not self.server_cpus:
            return start()
        mine = os.sched_getaffinity(0)
        os.sched_setaffinity(0, self.server_cpus)
        try:
            return start()
        finally:
            os.sched_setaffinity(0, mine)

    def close(self) -> None:
        """Deactivate every backend, close channels, stop every server."""
        for channel in getattr(self, "_channels", []):
            channel.close()
        for backend in self._backends.values():
            if not isinstance(backend, Exception):
                backend.deactivate()
        for server in self._servers.values():
            server.terminate()
        self._backends.clear()
        self._servers.clear()


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


def _foreign_modules(tree: Path) -> list[str]:
    """``rps_infer`` modules (and the ``__main__`` that started this) loaded from outside ``tree``."""
    foreign = []
    for name, module in list(sys.modules.items()):
        spec_name = getattr(getattr(module, "__spec__", None), "name", "") or ""
        if name.split(".")[0] != "rps_infer" and not spec_name.startswith("rps_infer"):
            continue
        path = getattr(module, "__file__", None)
        if path and not Path(path).resolve().is_relative_to(tree):
            foreign.append(f"{spec_name or name} from {Path(path).resolve()}")
    return foreign


def main(argv: list[str] | None = None) -> int:
    """``python -m rps_infer _bench-worker``: serve requests on stdin until ``exit``."""
    parser = argparse.ArgumentParser(prog="python -m rps_infer _bench-worker")
    parser.add_argument("--tree", type=Path, required=True, help="the source tree this worker must import")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tensorflow", action="store_true", help="pin TensorFlow's threads (imports it)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="run on this CPU only; servers this worker starts get the other CPUs")
    args = parser.parse_args(argv)
    server_cpus = None
    if args.cpu is not None:
        server_cpus = os.sched_getaffinity(0) - {args.cpu} or None
        os.sched_setaffinity(0, {args.cpu})
    # The protocol owns the real stdout; anything a framework prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    package = sys.modules["rps_infer"]  # loaded with this module: the tree under test

    tree = args.tree.resolve()
    hello = {"protocol": PROTOCOL, "rps_infer": str(Path(package.__file__).resolve()), "tree": str(tree),
             "pid": os.getpid()}
    foreign = _foreign_modules(tree)
    if foreign:
        hello["error"] = f"imported {foreign[0]}, not from {tree}"
        channel.write(json.dumps(hello) + "\n")
        return 2
    from rps_infer.runtime import pin_threads

    pin_threads(args.threads, ("pyt", "tf") if args.tensorflow else ("pyt",))
    builder = CaseBuilder(args.threads, server_cpus)
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
