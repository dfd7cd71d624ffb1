"""The benchmark suite's wiring: cases from the zoo manifest, pinned threads, machine info,
and :func:`run_case`, the one place that times a callable and hands the result to the gate."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest

from rps_infer import zoo
from rps_infer.backends import BackendSpec
from rps_infer.bench import machine
from rps_infer.bench.gate import CALIBRATION_GROUP, Timing, gate_of, slowdown_factor
from rps_infer.bench.pinning import backend_options, pin_threads
from rps_infer.bench.timing import Plan, measure, plan_for, spin
from rps_infer.errors import ProviderUnavailableError

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


def pytest_configure(config: pytest.Config) -> None:
    """Pin framework threads before anything runs (TensorFlow refuses later changes)."""
    keep = config.getoption("--backends")
    # Importing TensorFlow costs seconds: skip it when no tf case runs.
    pin_threads(config.getoption("--threads"), tensorflow=not keep or "tf" in keep)


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


class BackendPool:
    """Activated backends shared across a session (one per model and backend-device)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._backends: dict[tuple[str, str], object] = {}

    def get(self, model: str, spec: str):
        """The activated backend, or a skip with the reason it cannot run here."""
        key = (model, spec)
        if key not in self._backends:
            try:
                self._backends[key] = ZOO[model].backend(spec, **backend_options(spec, self.threads)).activate()
            except ProviderUnavailableError as exc:
                self._backends[key] = exc
        found = self._backends[key]
        if isinstance(found, Exception):
            pytest.skip(f"{spec} unavailable here: {found}")
        return found

    def close(self) -> None:
        """Deactivate every backend."""
        for backend in self._backends.values():
            if not isinstance(backend, Exception):
                backend.deactivate()


@pytest.fixture(scope="session")
def backends(request: pytest.FixtureRequest, built_zoo):
    """Shared, activated backends of the built zoo."""
    pool = BackendPool(request.config.getoption("--threads"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def built_zoo(request: pytest.FixtureRequest):
    """The zoo's CI models (all with --all-models) built into models/build/ (skipped when up to date)."""
    everything = request.config.getoption("--all-models")
    zoo.build([e for e in ZOO.values() if e.ci or everything])
    return ZOO


def remeasure(fn, plan: Plan) -> Timing:
    """The gate's second look at a flagged case: after a 1 s pause (a disturbance on a shared
    machine often lasts about as long as one case) and over twice as many rounds."""
    time.sleep(1.0)
    samples = measure(fn, dataclasses.replace(plan, rounds=2 * plan.rounds))
    return Timing(float(np.median(samples)), float(samples.min()))


def run_case(benchmark, request: pytest.FixtureRequest, fn, *, group: str, batch: int,
             extra_info: dict | None = None) -> None:
    """Time ``fn`` with pytest-benchmark (warm-up excluded), then let the gate judge the median.

    With ``$RPS_INFER_BENCH_SLOWDOWN=F`` each call spins F times the case's baseline
    median extra: a real slowdown, used to prove the gate fails. The calibration
    cases are the yardstick and are never slowed.
    """
    gate = gate_of(request.config)
    factor = slowdown_factor() if group != CALIBRATION_GROUP else 0.0
    if factor:
        base = gate.expected(benchmark.name) if gate else None
        extra = factor * (base if base else float(np.median(measure(fn, plan_for(fn, budget_s=0.05)))))

        def target() -> None:
            fn()
            spin(extra)
    else:
        target = fn
    benchmark.group = group
    benchmark.extra_info.update(extra_info or {})
    benchmark.extra_info["batch_size"] = batch
    if benchmark.disabled:  # --benchmark-disable: pedantic runs the body once, as a smoke test
        benchmark.pedantic(target)
        return
    plan = plan_for(target)
    benchmark.pedantic(target, rounds=plan.rounds, iterations=plan.iterations, warmup_rounds=plan.warmup)
    stats = benchmark.stats.stats
    benchmark.extra_info["items_per_s"] = batch / stats.median
    if gate is not None:
        row = gate.judge(benchmark.name, group, Timing(stats.median, stats.min), lambda: remeasure(target, plan))
        if row.verdict == "REGRESSION":
            pytest.fail(f"latency regression: {benchmark.name} median {row.now * 1e6:.1f}us vs baseline "
                        f"{row.baseline * 1e6:.1f}us (x{row.ratio:.2f}, limit x{1 + gate.threshold(group):.2f})",
                        pytrace=False)
        problems = gate.check_relations(benchmark.name)
        if problems:
            pytest.fail("required speed-up missing: " + "; ".join(problems), pytrace=False)
