"""The benchmark suite's wiring: cases from the zoo manifest, pinned threads, machine info,
and :func:`run_case`, the one place that times a case and hands the result to the gate.

Every test describes its case as data (see :mod:`rps_infer.bench.gate.worker`); the case is
built by :class:`~rps_infer.bench.gate.worker.CaseBuilder`, in this process, or, when the
gate runs A/B, in worker processes of the base revision and of the working tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from rps_infer import zoo
from rps_infer.backends.spec import BackendSpec
from rps_infer.bench import machine
from rps_infer.bench.gate.ab import WorkerError
from rps_infer.bench.gate.plugin import gate_of
from rps_infer.bench.gate.worker import CaseBuilder, CaseParityError, CaseUnavailableError, CaseUnsupportedError
from rps_infer.bench.timing import plan_for
from rps_infer.runtime import pin_threads

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ZOO = zoo.load_zoo()


@dataclass(frozen=True)
class Case:
    """One timed configuration: a zoo model on a backend-device at a batch size."""

    model: str
    backend: str  # a backend spec, e.g. onnxrt-cpu or onnxrt-tensorrt:int8
    batch: int

    @property
    def id(self) -> str:
        """``policy-onnxrt-cpu-b1``."""
        return f"{self.model}-{self.backend}-b{self.batch}"

    def description(self) -> dict:
        """The case as the workers read it."""
        return {"kind": "latency", "model": self.model, "backend": self.backend, "batch": self.batch}


def pytest_addoption(parser: pytest.Parser) -> None:
    """--backends, --device, --threads, --all-models."""
    group = parser.getgroup("rps_infer benchmarks")
    group.addoption("--backends", default="", help="comma-separated backends or backend-devices to keep "
                    "(e.g. onnxrt,pyt-cpu); default: every backend the zoo lists")
    group.addoption("--device", default="", help="keep only this device (cpu, cuda, tensorrt, ...)")
    group.addoption("--threads", type=int, default=1,
                    help="threads per framework, set once per process (default 1: ORT intra-op 1 without "
                    "spinning, torch 1, TensorFlow 1 intra / 1 inter)")
    group.addoption("--all-models", action="store_true", help="also the zoo models with ci = false")


def wants_tensorflow(config: pytest.Config) -> bool:
    """Whether a tf case can run (importing TensorFlow costs seconds: skip it otherwise)."""
    keep = config.getoption("--backends")
    return not keep or "tf" in keep


def pytest_configure(config: pytest.Config) -> None:
    """Pin framework threads before anything runs (TensorFlow refuses later changes)."""
    pin_threads(config.getoption("--threads"), ("pyt", "tf") if wants_tensorflow(config) else ("pyt",))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """CPU model, cores, GPUs, ORT providers, versions and the runner class."""
    machine_info.update(machine.machine_info())
    machine_info["threads"] = config.getoption("--threads")


def selected_cases(config: pytest.Config) -> list[Case]:
    """Every zoo model x backend x batch, narrowed by --backends / --device / --all-models."""
    keep = [b for b in config.getoption("--backends").split(",") if b]
    device = config.getoption("--device")
    cases = []
    for entry in ZOO.values():
        if not entry.ci and not config.getoption("--all-models"):
            continue
        for spec in entry.backends:
            parsed = BackendSpec.parse(spec)
            if keep and parsed.backend not in keep and spec not in keep and spec.split(":")[0] not in keep:
                continue
            if device and parsed.device != device:
                continue
            cases.extend(Case(entry.name, spec, b) for b in entry.batch_sizes)
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that takes ``case`` with the selected cases."""
    if "case" in metafunc.fixturenames:
        cases = selected_cases(metafunc.config)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def built_zoo(request: pytest.FixtureRequest):
    """The zoo's CI models (all with --all-models) built into models/build/ (skipped when up to date)."""
    everything = request.config.getoption("--all-models")
    zoo.build([e for e in ZOO.values() if e.ci or everything])
    return ZOO


@pytest.fixture(scope="session")
def case_builder(request: pytest.FixtureRequest, built_zoo):
    """Builds the timed callables in this process (backends and servers shared by the session)."""
    builder = CaseBuilder(request.config.getoption("--threads"))
    yield builder
    builder.close()


def prepared(builder: CaseBuilder, description: dict):
    """The case built here; a case this machine cannot run is skipped with the reason."""
    try:
        return builder.prepare(description)
    except (CaseUnavailableError, CaseUnsupportedError) as exc:
        pytest.skip(str(exc))
    except CaseParityError as exc:
        pytest.fail(f"parity failed, not timed: {exc}", pytrace=False)


def _record(benchmark, samples: list[float]) -> None:
    """Hand per-call seconds timed elsewhere (the A/B head workers) to pytest-benchmark, so its
    table and ``--benchmark-json`` show them. pytest-benchmark has no public API for that;
    these are the two steps its ``pedantic`` takes (pinned by ``pytest-benchmark>=5``)."""
    benchmark._mode = "rps_infer A/B workers"
    if samples:
        stats = benchmark._make_stats(1)
        for seconds in samples:
            stats.update(seconds)


def run_case(benchmark, request: pytest.FixtureRequest, description: dict, *, group: str, batch: int) -> None:
    """Time the described case, then let the gate judge it.

    Without ``--gate`` or in stored mode pytest-benchmark times it here (warm-up
    excluded); with ``--benchmark-disable`` it runs once, as a smoke test. In A/B mode
    the gate's workers time it on both trees and the head's rounds are recorded here.
    """
    gate = gate_of(request.config)
    benchmark.group = group
    benchmark.extra_info["batch_size"] = batch
    session = None
    if gate is not None and not benchmark.disabled:
        session = gate.session(threads=request.config.getoption("--threads"),
                               tensorflow=wants_tensorflow(request.config),
                               all_models=request.config.getoption("--all-models"))
    if session is not None:
        try:
            result, row = gate.measure_ab(session, benchmark.name, group, description)
        except WorkerError as exc:
            pytest.fail(str(exc), pytrace=False)
        if result.status == "unavailable":
            pytest.skip(result.reason)
        if result.status == "parity":
            pytest.fail(f"parity failed, not timed: {result.reason}", pytrace=False)
        benchmark.extra_info.update(result.info)
        _record(benchmark, result.head_samples)
    else:
        case = prepared(request.getfixturevalue("case_builder"), description)
        benchmark.extra_info.update(case.info)
        if benchmark.disabled:  # --benchmark-disable: pedantic runs the body once
            benchmark.pedantic(case.fn)
            return
        plan = plan_for(case.fn)
        benchmark.pedantic(case.fn, rounds=plan.rounds, iterations=plan.iterations, warmup_rounds=plan.warmup)
        stats = benchmark.stats.stats
        row = gate.judge_stored(benchmark.name, group, stats.median, stats.min) if gate is not None else None
    if benchmark.stats:
        benchmark.extra_info["items_per_s"] = batch / benchmark.stats.stats.median
    if row is not None and row.verdict.fails:
        pytest.fail(_regression_line(gate, row), pytrace=False)
    problems = gate.relation_failures(benchmark.name) if gate is not None else []
    if problems:
        pytest.fail("required speed-up missing: " + "; ".join(problems), pytrace=False)


def _regression_line(gate, row) -> str:
    against = f"base {gate.base_commit[:10]}" if row.mode == "ab" else "the stored baseline"
    if row.interval is not None:
        iv = row.interval
        return (f"latency regression: {row.case} x{iv.ratio:.3f} [{iv.low:.3f}, {iv.high:.3f}] vs {against} "
                f"(head {row.head * 1e6:.1f}us, base {row.base * 1e6:.1f}us; fails when the interval lies above "
                f"x{1 + row.limit:.2f})")
    return (f"latency regression: {row.case} median {row.head * 1e6:.1f}us vs {against} {row.base * 1e6:.1f}us "
            f"(x{row.ratio:.2f}, limit x{1 + row.limit:.2f})")

