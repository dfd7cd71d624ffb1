"""The benchmark suite's pytest plugin (registered with pytest11, so a user's own suite has it
too): options, cases from the zoo manifest (``--zoo``), pinned threads, machine info,
:func:`run_case` (the one place that times a suite case and hands it to the gate), and the
fixtures a user's tests use for their own models: ``rps_parity`` and ``rps_benchmark``.

Every test describes its case as data (see :mod:`rps_infer.bench.gate.worker`); the case is
built by :class:`~rps_infer.bench.gate.worker.CaseBuilder`, in this process, or, when the
gate runs A/B, in worker processes of the base revision and of the working tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from rps_infer import zoo
from rps_infer.backends.spec import BackendSpec
from rps_infer.bench import machine
from rps_infer.bench.gate.ab import ABResult, WorkerError
from rps_infer.bench.gate.plugin import gate_of
from rps_infer.bench.gate.worker import CaseBuilder, CaseParityError, CaseUnavailableError, CaseUnsupportedError
from rps_infer.bench.timing import plan_for
from rps_infer.runtime import pin_threads

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SUITE_PACKAGE = "rps_infer.benchmarks"
ZOO_KEY = pytest.StashKey[dict]()


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
    """--zoo, --backends, --device, --threads, --all-models."""
    group = parser.getgroup("rps_infer benchmarks")
    group.addoption("--zoo", type=Path, default=None, metavar="PATH",
                    help="the zoo manifest whose models the suite times (default: $RPS_INFER_ZOO, else the "
                    "project's models/zoo.toml)")
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
    """Register the suite's markers (a user's --strict-markers run knows them too)."""
    config.addinivalue_line("markers", "calibration: the gate's yardstick; runs before the other benchmarks")


def in_suite(item_or_function) -> bool:
    """Whether a test (or test function) is one of the shipped suite's."""
    function = getattr(item_or_function, "function", item_or_function)
    return getattr(function, "__module__", "").startswith(SUITE_PACKAGE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pin framework threads before the suite runs anything (TensorFlow refuses later changes);
    a run without the suite's tests is left alone."""
    if any(in_suite(item) for item in items):
        pin_threads(config.getoption("--threads"), ("pyt", "tf") if wants_tensorflow(config) else ("pyt",))


def suite_zoo(config: pytest.Config) -> dict:
    """The zoo the suite times (``--zoo``), read once per session."""
    if ZOO_KEY not in config.stash:
        config.stash[ZOO_KEY] = zoo.load_zoo(config.getoption("--zoo"))
    return config.stash[ZOO_KEY]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """CPU model, cores, GPUs, ORT providers, versions and the runner class."""
    machine_info.update(machine.machine_info())
    machine_info["threads"] = config.getoption("--threads")


def selected_cases(config: pytest.Config) -> list[Case]:
    """Every zoo model x backend x batch, narrowed by --backends / --device / --all-models."""
    keep = [b for b in config.getoption("--backends").split(",") if b]
    device = config.getoption("--device")
    cases = []
    for entry in suite_zoo(config).values():
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
    """Parametrise every suite test that takes ``case`` with the selected cases."""
    if "case" in metafunc.fixturenames and in_suite(metafunc.function):
        cases = selected_cases(metafunc.config)
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def rps_zoo(request: pytest.FixtureRequest):
    """The suite's zoo: its CI models (all with --all-models) built (skipped when up to date)."""
    everything = request.config.getoption("--all-models")
    entries = suite_zoo(request.config)
    zoo.build([e for e in entries.values() if e.ci or everything])
    return entries


@pytest.fixture(scope="session")
def rps_case_builder(request: pytest.FixtureRequest, rps_zoo):
    """Builds the timed callables in this process (backends and servers shared by the session)."""
    builder = CaseBuilder(request.config.getoption("--threads"), zoo_path=request.config.getoption("--zoo"))
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
        case = prepared(request.getfixturevalue("rps_case_builder"), description)
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



# -- for a user's own suite -----------------------------------------------------------------
@pytest.fixture
def rps_parity():
    """:func:`rps_infer.testing.assert_parity`: ``rps_parity(reference, candidate, inputs=..., tolerance=...)``
    raises ``AssertionError`` with the full report when the models disagree; returns the report."""
    from rps_infer.testing import assert_parity

    return assert_parity


@pytest.fixture
def rps_benchmark(benchmark, request: pytest.FixtureRequest):
    """Times a model file the way the suite times its cases, and lets the gate judge it.

    ``rps_benchmark(path, backend="onnxrt-cpu", batch=1, inputs=None, hints=None, threads=1)``:
    pytest-benchmark times ``infer`` (warm-up excluded). With ``--gate`` in A/B mode the file
    at the base revision (``git show REV:path``) and the working tree's file are timed
    interleaved in this process instead, and a regression fails the test; in stored mode
    the median is judged against the baseline file.
    """

    def measure(path, *, backend: str | None = None, batch: int = 1, inputs=None, hints=None,
                threads: int = 1, group: str = "inprocess"):
        run = _prepared_file(Path(path), backend, batch, inputs, hints, threads)
        benchmark.group = group
        benchmark.extra_info.update(batch_size=batch, model=str(path), **run.info)
        gate = gate_of(request.config)
        ab = gate is not None and gate.mode == "ab" and not benchmark.disabled
        base = _base_file(gate, Path(path)) if ab else None
        if base is not None:
            with base as base_path:
                base_run = _prepared_file(base_path, backend, batch, inputs, hints, threads)
                result, row = gate.measure_files(benchmark.name, group, base_run.fn, run.fn)
            _record(benchmark, result.head_samples)
        else:
            if benchmark.disabled:
                benchmark.pedantic(run.fn)
                return None
            plan = plan_for(run.fn)
            benchmark.pedantic(run.fn, rounds=plan.rounds, iterations=plan.iterations, warmup_rounds=plan.warmup)
            stats = benchmark.stats.stats
            if ab:  # the base revision has no such file: a new case, timed but not compared
                new = ABResult(benchmark.name, "new", f"{path} is not in the base revision {gate.base_commit[:10]}")
                row = gate.judge_ab(benchmark.name, group, new)
            else:
                row = gate.judge_stored(benchmark.name, group, stats.median, stats.min) if gate is not None else None
        if row is not None and row.verdict.fails:
            pytest.fail(_regression_line(gate, row), pytrace=False)
        return row

    return measure


def _prepared_file(path: Path, backend: str | None, batch: int, inputs, hints, threads: int):
    """A timed callable of ``path``'s inference (activated backend, inputs prepared outside)."""
    from rps_infer.bench.gate.worker import Prepared
    from rps_infer.formats import open_model
    from rps_infer.inputs import InputChoice, InputFile
    from rps_infer.runtime import open_backend

    runner = open_backend(open_model(path, hints=hints), backend, threads=threads).activate()
    choice = InputChoice(file=InputFile.of(inputs)) if inputs is not None else InputChoice()
    feeds = choice.feeds(runner.input_specs, batch, seed=batch)
    info = {k: v for k, v in runner.describe().items() if k in ("backend", "device", "framework", "version")}
    return Prepared(lambda: runner.infer(feeds), info)


def _base_file(gate, path: Path):
    """A context giving ``path`` as it was at the A/B gate's base revision (a temp file), or None
    when that revision lacks the file."""
    import contextlib
    import tempfile

    from rps_infer.bench.gate.revisions import file_at

    data = file_at(gate.root, gate.base_commit, path)
    if data is None:
        return None

    @contextlib.contextmanager
    def materialised():
        with tempfile.TemporaryDirectory(prefix="rps-base-") as tmp:
            target = Path(tmp) / path.name
            target.write_bytes(data)
            yield target

    return materialised()
