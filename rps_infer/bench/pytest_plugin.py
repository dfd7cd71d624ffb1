"""The pytest adapter of the harness (registered with pytest11, so every repository has it).

It parametrises the declared suite (:mod:`rps_infer.benchmarks`: every model x backend x
batch size the project declares, :mod:`rps_infer.project`), turns each test into a
:class:`~rps_infer.bench.cases.Case` and hands it to the one :meth:`Harness.measure
<rps_infer.bench.harness.Harness.measure>`, then turns what came back into pytest outcomes:
skipped (not on this machine), failed (parity, a regression, a missing speed-up). Its
options: the suite's selection (``--zoo``, ``--backends``, ``--device``, ``--threads``,
``--all-models``) and the gate's (``--gate`` ...). Fixtures for a user's own tests:
``rps_parity`` and ``rps_benchmark``.

Timed here, a case is timed by pytest-benchmark's own ``pedantic`` (its table and JSON show
it); timed A/B, the head's rounds come from worker processes and the gate's table shows them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rps_infer.bench import gate_report, machine
from rps_infer.bench.cases import Case, gate_rules, hints_to_dict, suite_cases
from rps_infer.bench.harness import Harness, Measurement, Settings
from rps_infer.bench.timing import plan_for
from rps_infer.errors import ConfigError, RevisionError, RpsInferError
from rps_infer.project import Project
from rps_infer.runtime import pin_threads

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SUITE_PACKAGE = "rps_infer.benchmarks"
HARNESS_KEY = pytest.StashKey[Harness]()
UNUSED_FIXTURE = "ignore:Benchmark fixture was not used at all in this test!"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The suite's selection and the gate's options."""
    group = parser.getgroup("rps_infer benchmarks")
    group.addoption("--zoo", type=Path, default=None, metavar="PATH",
                    help="a model manifest to time instead of the models the project declares ([tool.rps_infer] "
                    "models in pyproject.toml or rps_infer.toml)")
    group.addoption("--backends", default="", help="comma-separated backends or backend-devices to keep "
                    "(e.g. onnxrt,pyt-cpu); default: every backend the models declare")
    group.addoption("--device", default="", help="keep only this device (cpu, cuda, tensorrt, ...)")
    group.addoption("--threads", type=int, default=1,
                    help="threads per framework, set once per process (default 1: ORT intra-op 1 without "
                    "spinning, torch 1, TensorFlow 1 intra / 1 inter)")
    group.addoption("--all-models", action="store_true", help="also the models with ci = false")
    gate = parser.getgroup("rps_infer latency gate")
    gate.addoption("--gate", action="store_true", help="fail benchmarks that got slower (see --gate-mode)")
    gate.addoption("--gate-mode", default="auto", choices=("auto", "ab", "stored"),
                   help="ab: time the base revision and the working tree in the same run; stored: compare "
                   "with <baselines>/<runner-class>.json; auto (default): ab in a git checkout, else stored")
    gate.addoption("--gate-base", default=None, metavar="REV",
                   help="A/B base revision (default: in a pull request the merge-base with its target branch, "
                   "else this runner class's baseline commit, else the newest baseline commit, else the "
                   "merge-base with the project's base_branch)")
    gate.addoption("--gate-allow-missing-base", action="store_true",
                   help="a base that cannot be found or run falls back to stored mode instead of failing")
    gate.addoption("--gate-json", type=Path, default=None, metavar="PATH",
                   help="write the gate's verdicts to PATH and a plot of the ratios to PATH with .png")
    gate.addoption("--runner-class", default=None,
                   help="baseline name (default: derived from this machine, e.g. cpu-x86_64-2c-amd-epyc)")
    gate.addoption("--gate-baseline", type=Path, default=None, help="stored mode: compare with this baseline file")


def wants_tensorflow(config: pytest.Config) -> bool:
    """Whether a tf case can run (importing TensorFlow costs seconds: skip it otherwise)."""
    keep = config.getoption("--backends")
    return not keep or "tf" in keep


def _settings(config: pytest.Config) -> Settings:
    return Settings(gate=config.getoption("--gate"), mode=config.getoption("--gate-mode"),
                    base=config.getoption("--gate-base"),
                    allow_missing_base=config.getoption("--gate-allow-missing-base"),
                    runner_class=config.getoption("--runner-class"), baseline_file=config.getoption("--gate-baseline"),
                    threads=config.getoption("--threads"), tensorflow=wants_tensorflow(config),
                    all_models=config.getoption("--all-models"), models=_manifest(config),
                    keep=tuple(b for b in config.getoption("--backends").split(",") if b),
                    device=config.getoption("--device"))


def _manifest(config: pytest.Config) -> Path | None:
    given = config.getoption("--zoo")
    return None if given is None else (config.invocation_params.dir / given).resolve()


def harness_of(config: pytest.Config) -> Harness:
    """This run's harness (made on first use, so a run that times nothing never reads the project)."""
    if HARNESS_KEY not in config.stash:
        project = Project.find(config.invocation_params.dir)
        settings = _settings(config)
        gate, entries = project.config.gate, {}
        if settings.models is not None or project.config.models:
            entries = project.models(settings.models)
            gate = gate_rules(gate, entries)
        # Workers import TensorFlow (seconds each) only for a suite that declares a tf backend.
        tensorflow = settings.tensorflow and any(s.startswith("tf") for e in entries.values() for s in e.backends)
        config.stash[HARNESS_KEY] = Harness(project, replace(settings, tensorflow=tensorflow), gate)
    return config.stash[HARNESS_KEY]


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers; with --gate, choose the mode and base now (a bad setting or
    base is one usage error, not a failure per case)."""
    config.addinivalue_line("markers", "calibration: the gate's yardstick; runs before the other benchmarks")
    if config.getoption("--gate"):
        try:
            harness_of(config)
        except (RevisionError, ConfigError) as exc:
            raise pytest.UsageError(str(exc)) from None


def in_suite(item_or_function) -> bool:
    """Whether a test (or test function) is one of the shipped suite's."""
    function = getattr(item_or_function, "function", item_or_function)
    return getattr(function, "__module__", "").startswith(SUITE_PACKAGE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every suite test that takes ``case`` with the declared model cases."""
    if "case" not in metafunc.fixturenames or not in_suite(metafunc.function):
        return
    config = metafunc.config
    try:
        entries = Project.find(config.invocation_params.dir).models(_manifest(config))
    except RpsInferError as exc:
        pytest.fail(f"the declared suite: {exc}", pytrace=False)
    settings = _settings(config)
    cases = suite_cases(entries, settings.keep, settings.device, settings.all_models)
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Calibration cases first (the machine's yardstick before anything else); framework threads
    pinned before the suite runs anything (TensorFlow refuses later changes). The suite's tests
    take pytest-benchmark's fixture so that its --benchmark-only / -skip / -disable select
    them; timed A/B (the head's rounds come from workers) or measuring a relation, it has
    nothing to time, and its warning about that is silenced for them alone."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("calibration") else 1)
    ours = [item for item in items if in_suite(item) or "rps_benchmark" in getattr(item, "fixturenames", ())]
    if any(in_suite(item) for item in items):
        tensorflow = wants_tensorflow(config) and any("[tf" in item.name or "-tf-" in item.name for item in items)
        pin_threads(config.getoption("--threads"), ("pyt", "tf") if tensorflow else ("pyt",))
    for item in ours:
        item.add_marker(pytest.mark.filterwarnings(UNUSED_FIXTURE))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """CPU model, cores, GPUs, ORT providers, versions and the runner class."""
    machine_info.update(machine.machine_info())
    machine_info["threads"] = config.getoption("--threads")


@pytest.fixture(scope="session")
def rps_zoo(request: pytest.FixtureRequest):
    """The declared models: the CI ones (all with --all-models) built where they are not up to date."""
    from rps_infer import zoo

    config = request.config
    entries = Project.find(config.invocation_params.dir).models(_manifest(config))
    zoo.build([e for e in entries.values() if e.ci or config.getoption("--all-models")])
    return entries


@pytest.fixture(scope="session")
def rps_case_builder(request: pytest.FixtureRequest, rps_zoo):
    """Builds the cases in this process (backends and servers shared by the session)."""
    return harness_of(request.config).builder()


def run_case(benchmark, request: pytest.FixtureRequest, description: dict, *, group: str, batch: int) -> Measurement:
    """Measure the described case (named after the test) through the harness and make its outcome
    the test's. With ``--benchmark-disable`` it is built (parity checked) and run once."""
    case = Case(request.node.name, group, description, batch)
    harness = harness_of(request.config)
    benchmark.group = group
    benchmark.extra_info["batch_size"] = batch
    if benchmark.disabled:  # --benchmark-disable: pedantic runs the body once
        measured = _outcome(harness, case, lambda: Measurement(case, "measured", info=_smoke(benchmark, harness, case)))
    else:
        measured = _outcome(harness, case, lambda: harness.measure(case, clock=_pedantic(benchmark)))
    benchmark.extra_info.update(measured.info)
    if measured.samples:
        benchmark.extra_info["items_per_s"] = batch / float(np.median(measured.samples))
    if measured.failures:
        pytest.fail("; ".join(measured.failures), pytrace=False)
    return measured


def _outcome(harness: Harness, case: Case, measure) -> Measurement:
    """``measure()``, its statuses as pytest outcomes: unavailable -> skip, unsupported -> skip,
    parity -> fail (never timed); a worker's error or a broken worker -> fail in one line; an
    unusable base stops the run in one line."""
    try:
        measured = measure()
    except RevisionError as exc:
        pytest.exit(f"latency gate: {exc}", returncode=pytest.ExitCode.TESTS_FAILED)
    except RpsInferError as exc:
        pytest.fail(str(exc), pytrace=False)
    if measured.status in ("unavailable", "unsupported"):
        pytest.skip(measured.reason)
    if measured.status == "parity":
        pytest.fail(f"parity failed, not timed: {measured.reason}", pytrace=False)
    if measured.status == "error":
        pytest.fail(measured.reason, pytrace=False)
    return measured


def _smoke(benchmark, harness: Harness, case: Case) -> dict:
    from rps_infer.bench.cases import CaseParityError, CaseUnavailableError, CaseUnsupportedError

    try:
        prepared = harness.prepare_here(case)
    except (CaseUnavailableError, CaseUnsupportedError) as exc:
        pytest.skip(str(exc))
    except CaseParityError as exc:
        pytest.fail(f"parity failed, not timed: {exc}", pytrace=False)
    benchmark.pedantic(prepared.fn)
    return prepared.info


def _pedantic(benchmark):
    """A clock that lets pytest-benchmark time the call (public API: ``pedantic`` and its stats)."""
    def clock(fn) -> list[float]:
        plan = plan_for(fn)
        benchmark.pedantic(fn, rounds=plan.rounds, iterations=plan.iterations, warmup_rounds=plan.warmup)
        return list(benchmark.stats.stats.data)

    return clock


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop runners and workers, judge the suite, fail a gated run that compared nothing; write --gate-json."""
    harness = session.config.stash.get(HARNESS_KEY, None)
    if harness is None:
        return
    failures = harness.finish()
    if failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = session.config.getoption("--gate-json")
    if path is not None and harness.judge is not None:
        gate_report.write(harness, path)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The gate's table (and what failed the run as a whole) before pytest's summary line."""
    harness = config.stash.get(HARNESS_KEY, None)
    if harness is None or harness.judge is None:
        return
    terminalreporter.section("latency gate")
    for line in gate_report.table_lines(harness):
        for part in line.splitlines():
            terminalreporter.write_line(part)
    for line in getattr(harness, "failures", []):
        terminalreporter.write_line(line, red=True, bold=True)


# -- for a user's own tests ----------------------------------------------------------------
@pytest.fixture
def rps_parity():
    """:func:`rps_infer.testing.assert_parity`: ``rps_parity(reference, candidate, inputs=..., tolerance=...)``
    raises ``AssertionError`` with the full report when the models disagree; returns the report."""
    from rps_infer.testing import assert_parity

    return assert_parity


@pytest.fixture
def rps_benchmark(benchmark, request: pytest.FixtureRequest, tmp_path_factory):
    """Times a model file the way the suite times its cases, and lets the gate judge it.

    ``rps_benchmark(path, backend=None, batch=1, inputs=None, hints=None, threads=1, group="inprocess")``
    (``backend``: a spec, default the file's own backend on the CPU; ``inputs``: name -> array,
    or an ``.npz`` path; ``hints``: a :class:`~rps_infer.ModelHints`) times ``infer``, warm-up
    excluded. With ``--gate`` in A/B mode the file as the base revision has it and as the
    working tree has it are timed interleaved in worker processes, each with its side's own
    Python code; a regression fails the test, a file the base lacks is ``new``. Returns the
    gate's row (None without ``--gate``).
    """
    harness = harness_of(request.config)
    root = harness.project.root

    def measure(path, *, backend: str | None = None, batch: int = 1, inputs=None, hints=None, threads: int = 1,
                group: str = "inprocess"):
        from rps_infer.formats import ModelHints

        hints = hints or ModelHints()
        given = ModelHints(hints.torch_model, hints.torch_kwargs, tuple(_in_project(p, root) for p in
                                                                        (*hints.python_path, Path.cwd())),
                           hints.input_shapes, hints.static_batch)
        description = {"kind": "file", "path": _in_project(path, root), "backend": backend, "batch": batch,
                       "threads": threads, "hints": hints_to_dict(given),
                       "inputs": _inputs_file(inputs, root, tmp_path_factory)}
        benchmark.extra_info["model"] = str(path)
        return run_case(benchmark, request, description, group=group, batch=batch).row

    return measure


def _in_project(path, root: Path) -> str:
    """``path`` relative to the project root when it lies in it (each tree has its own), else absolute."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def _inputs_file(inputs, root: Path, tmp_path_factory) -> str | None:
    """The inputs as a file both sides read: a given path (in the project: each side's own), or
    arrays written once to a temp ``.npz``."""
    if inputs is None:
        return None
    if isinstance(inputs, (str, Path)):
        return _in_project(inputs, root)
    fd, name = tempfile.mkstemp(suffix=".npz", dir=tmp_path_factory.getbasetemp())
    os.close(fd)
    np.savez(name, **{k: np.asarray(v) for k, v in inputs.items()})
    return name
