"""What the harness times: cases as data, and :class:`CaseBuilder`, the one definition of how a
case becomes a timed callable (parity checked first).

A case is described as a JSON-ready dict, so the same description is built in this
process or, for the A/B gate, in worker processes of two source trees (each with its own
code and files, :mod:`rps_infer.bench.runners.worker`). Descriptions stay compatible:
older trees must still build them.

    {"kind": "latency", "model": "policy", "backend": "onnxrt-cpu", "batch": 64}
    {"kind": "file", "path": "model.onnx", "backend": null, "batch": 1, "hints": {...}, "inputs": null}
    {"kind": "calibration", "batch": 1}            # bare single-thread onnxruntime (the gate's control)
    {"kind": "keras_predict", "model": "policy"}   # Keras model.predict per call (reference)
    {"kind": "grpc", "server": "service" | "echo", "api": "neural" | "v2", "model": "value", "batch": 64}

A suite's cases come from its declared models (:func:`suite_cases`): every model x backend
x batch size, named ``<model>-<backend>-b<batch>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rps_infer.backends.spec import BackendSpec
from rps_infer.project import GateConfig, Relation

SERVED_MODELS = ("policy", "value", "unet-ci", "digits-logreg", "digits-rf", "digits-xgb")
INFO_KEYS = ("backend", "device", "framework", "version", "active_providers", "threads", "intra_op_threads",
             "inter_op_threads", "precision", "io_binding", "compile", "channels_last")


class CaseUnsupportedError(Exception):
    """This tree cannot build the case (a model, backend or kind it does not know)."""


class CaseUnavailableError(Exception):
    """The case cannot run on this machine (no GPU, no provider)."""


class CaseParityError(Exception):
    """The timed callable does not compute the reference's function: it is never timed."""


@dataclass(frozen=True)
class Case:
    """One timed case: its name (the test's), its gate group, its description and its batch."""

    name: str
    group: str
    description: dict
    batch: int = 1


@dataclass(frozen=True)
class ModelCase:
    """One configuration of a declared suite: a model on a backend-device at a batch size."""

    model: str
    backend: str  # a backend spec, e.g. onnxrt-cpu or onnxrt-tensorrt:int8
    batch: int

    @property
    def id(self) -> str:
        """``policy-onnxrt-cpu-b1``."""
        return f"{self.model}-{self.backend}-b{self.batch}"

    def description(self) -> dict:
        """The case as a builder reads it."""
        return {"kind": "latency", "model": self.model, "backend": self.backend, "batch": self.batch}


def latency_name(model: str, backend: str, batch: int) -> str:
    """The suite's name for a latency case (what baselines, thresholds and relations name)."""
    return f"test_latency[{ModelCase(model, backend, batch).id}]"


def suite_cases(entries: Mapping, keep: Sequence[str] = (), device: str = "",
                all_models: bool = False) -> list[ModelCase]:
    """Every declared model x backend x batch, narrowed to backends (or backend-devices) in
    ``keep``, to ``device``, and to the CI models unless ``all_models``."""
    cases = []
    for entry in entries.values():
        if not entry.ci and not all_models:
            continue
        for spec in entry.backends:
            parsed = BackendSpec.parse(spec)
            if keep and parsed.backend not in keep and spec not in keep and spec.split(":")[0] not in keep:
                continue
            if device and parsed.device != device:
                continue
            cases.extend(ModelCase(entry.name, spec, b) for b in entry.batch_sizes)
    return cases


def gate_rules(config: GateConfig, entries: Mapping) -> GateConfig:
    """``config`` with the declared models' own rules added: each model's ``threshold`` for all
    its latency cases, its ``relations`` at each of its batch sizes."""
    cases, relations = dict(config.cases), list(config.relations)
    for entry in entries.values():
        for spec in entry.backends if entry.threshold is not None else ():
            for batch in entry.batch_sizes:
                cases.setdefault(latency_name(entry.name, spec, batch), entry.threshold)
        for rule in entry.relations:
            relations += [Relation(faster=latency_name(entry.name, rule.faster, b),
                                   than=latency_name(entry.name, rule.than, b), by=rule.by)
                          for b in entry.batch_sizes]
    return config.model_copy(update={"cases": cases, "relations": relations})


def hints_to_dict(hints) -> dict:
    """A :class:`~rps_infer.formats.ModelHints` as JSON data (paths as given)."""
    return {"torch_model": hints.torch_model, "torch_kwargs": dict(hints.torch_kwargs),
            "python_path": [str(p) for p in hints.python_path],
            "input_shapes": {k: list(v) for k, v in hints.input_shapes.items()}, "static_batch": hints.static_batch}


def hints_from_dict(data: Mapping, root: Path):
    """The :class:`~rps_infer.formats.ModelHints` :func:`hints_to_dict` wrote (relative folders from ``root``)."""
    from rps_infer.formats import ModelHints

    return ModelHints(data.get("torch_model"), dict(data.get("torch_kwargs") or {}),
                      tuple(root / p for p in data.get("python_path") or ()),
                      {k: tuple(v) for k, v in (data.get("input_shapes") or {}).items()},
                      bool(data.get("static_batch")))


@dataclass
class Prepared:
    """A case ready to time: the callable and what describes it (backend, versions)."""

    fn: Callable[[], object]
    info: dict = field(default_factory=dict)


class CaseBuilder:
    """Builds timed callables from case descriptions; keeps backends and servers for reuse.

    ``entries`` are the declared models (name -> :class:`~rps_infer.zoo.ZooEntry`). ``close``
    deactivates every backend and stops every server it started.
    """

    def __init__(self, entries: Mapping, threads: int = 1, server_cpus: set[int] | None = None,
                 root: Path | None = None) -> None:
        self.zoo = dict(entries)
        self.root = root or Path.cwd()  # where a file case's relative paths start
        self.threads = threads
        self.server_cpus = server_cpus  # where servers run (the timing client has its own core)
        self._backends: dict[tuple, object] = {}
        self._servers: dict[str, object] = {}
        self._channels: list = []
        self.missing: str | None = None  # why this tree has no suite, when it has none

    def build_models(self, all_models: bool = False, names: list[str] | None = None) -> list[str]:
        """Build the CI models (every model with ``all_models``; only ``names`` when given, as far
        as this tree has them) where they are not up to date."""
        from rps_infer import zoo

        entries = [e for e in self.zoo.values() if (e.ci or all_models) and (not names or e.name in names)]
        zoo.build(entries)
        return [e.name for e in entries]

    def entry(self, model: str):
        """The declared entry, or :class:`CaseUnsupportedError`."""
        if model not in self.zoo:
            raise CaseUnsupportedError(self.missing or f"model {model!r} is not in this tree's suite")
        return self.zoo[model]

    def backend(self, model: str, spec: str):
        """An activated backend, shared by every case of that model and spec."""
        return self._shared((model, spec), lambda: self.entry(model).backend(spec, threads=self.threads), spec)

    def reference(self, model: str):
        """The model's reference backend, activated once for all its cases."""
        return self._shared(("reference", model), lambda: self.entry(model).reference_backend(), "")

    def _shared(self, key: tuple, open_backend: Callable[[], object], spec: str):
        """The backend ``open_backend()`` gives, activated once; its failure is remembered as the
        case error every later case of the same key gets."""
        from rps_infer.errors import ParityError, ProviderUnavailableError, RpsInferError

        if key not in self._backends:
            try:
                if spec:
                    BackendSpec.parse(spec)
                self._backends[key] = open_backend().activate()
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
        builders = {"latency": self._latency, "file": self._file, "calibration": self._calibration,
                    "keras_predict": self._keras_predict, "grpc": self._grpc}
        if kind not in builders:
            raise CaseUnsupportedError(f"unknown case kind {kind!r}")
        return builders[kind](case)

    def _latency(self, case: dict) -> Prepared:
        entry = self.entry(case["model"])
        backend = self.backend(case["model"], case["backend"])
        batch = int(case["batch"])
        feeds = entry.feeds(backend.input_specs, batch, seed=batch)
        parity = entry.check_parity(backend, case["backend"], (batch,), reference=self.reference(case["model"]))
        if not parity:
            raise CaseParityError(str(parity))
        info = backend.describe()
        return Prepared(lambda: backend.infer(feeds), {k: info.get(k) for k in INFO_KEYS if k in info})

    def _file(self, case: dict) -> Prepared:
        """A model file (relative to this process's folder) on a backend, on the given inputs or
        generated ones: what ``rps_benchmark`` times."""
        from rps_infer.formats import open_model
        from rps_infer.inputs import InputChoice, InputFile
        from rps_infer.runtime import open_backend

        path = self.root / case["path"]
        if not path.exists():
            raise CaseUnsupportedError(f"{case['path']} is not in this tree")
        hints = hints_from_dict(case.get("hints") or {}, self.root)
        spec, threads = case.get("backend") or "", int(case.get("threads", self.threads))
        runner = self._shared(("file", str(path), spec, threads, repr(hints)),
                              lambda: open_backend(open_model(path, hints=hints), spec or None, threads=threads),
                              spec)
        inputs = case.get("inputs")
        choice = InputChoice(file=InputFile(self.root / inputs)) if inputs else InputChoice()
        feeds = choice.feeds(runner.input_specs, int(case["batch"]), seed=int(case["batch"]))
        info = runner.describe()
        return Prepared(lambda: runner.infer(feeds), {k: info.get(k) for k in INFO_KEYS[:4] if k in info})

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
        import numpy as np

        from rps_infer.bench.loadgen.generator import LoadSpec, make_call, payload
        from rps_infer.client import decode_response
        from rps_infer.compare import compare

        api, model, batch = case["api"], case["model"], int(case["batch"])
        entry = self.entry(model)
        server = self._server(case["server"])
        spec = LoadSpec(server.target, api, model, batch, 1, 0)
        call, message, channel = make_call(spec)
        self._channels.append(channel)
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
        return Prepared(lambda: call(message, timeout=30),
                        {"backend": f"grpc-{case['server']}", "api": api, "rpc": spec.rpc, "model": model})

    def _server(self, kind: str):
        from rps_infer.serving.launch import ServerProcess, echo_command, serve_command

        if kind not in ("service", "echo"):
            raise CaseUnsupportedError(f"unknown server {kind!r}")
        if not {"policy", "value"} <= set(self.zoo):
            raise CaseUnsupportedError("the gRPC cases serve the RPS policy and value models; this suite has none")
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
        for channel in self._channels:
            channel.close()
        for backend in self._backends.values():
            if not isinstance(backend, Exception):
                backend.deactivate()
        for server in self._servers.values():
            server.terminate()
        self._backends.clear()
        self._servers.clear()
        self._channels.clear()
