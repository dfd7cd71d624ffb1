"""THE way a case is measured and judged: :meth:`Harness.measure` ``(case) -> Measurement``.

One harness per run, in one of three modes:

- ``plain`` (no gate): timed here (:class:`~rps_infer.bench.runners.inprocess.InProcessRunner`).
- ``ab`` (the gate in a git checkout): every case timed against the *base revision*'s files
  (and code, where the tree carries its own ``rps_infer``) and the working tree's, in the
  same run, interleaved in worker processes (:mod:`rps_infer.bench.ab_gate`), whatever
  the machine. A flagged case is timed again by fresh workers and fails only if they agree.
- ``stored`` (``--gate-mode stored``, or no git history): timed here, judged against the
  runner class's baseline file.

The base (:func:`choose_base`): ``--gate-base REV``; in a pull request (``GITHUB_BASE_REF``)
the merge-base with its target branch; else the commit of this runner class's baseline,
else the newest commit among the baselines; else the merge-base with the project's
``base_branch`` (HEAD's parent when HEAD is on it). Every path comes from the project
(:class:`~rps_infer.project.Project`), never from where rps_infer is installed.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rps_infer.bench import machine
from rps_infer.bench.ab_gate import ABGate
from rps_infer.bench.cases import (
    Case,
    CaseParityError,
    CaseUnavailableError,
    CaseUnsupportedError,
)
from rps_infer.bench.judges.baselines import BaselineFile, load_baseline
from rps_infer.bench.judges.gate import GateJudge
from rps_infer.bench.judges.verdicts import GateRow, check_relation
from rps_infer.bench.runners.inprocess import Clock, InProcessRunner, default_clock
from rps_infer.bench.runners.revisions import (
    commit_time,
    default_base,
    has_history,
    resolve,
)
from rps_infer.errors import ConfigError, RevisionError
from rps_infer.project import GateConfig, Project

MODES = ("auto", "ab", "stored")


@dataclass(frozen=True)
class Settings:
    """How a run measures: the gate's options and the suite's selection."""

    gate: bool = False
    mode: str = "auto"
    base: str | None = None
    allow_missing_base: bool = False
    runner_class: str | None = None
    baseline_file: Path | None = None
    threads: int = 1
    tensorflow: bool = True
    all_models: bool = False
    models: Path | None = None  # a manifest overriding the project's
    keep: tuple[str, ...] = ()
    device: str = ""


@dataclass
class Measurement:
    """What :meth:`Harness.measure` found: the samples of the side it timed (the head in A/B),
    the gate's row, and the lines that fail the case."""

    case: Case
    status: str  # "measured", "new", "unavailable", "unsupported", "parity"
    samples: list[float] = field(default_factory=list)
    row: GateRow | None = None
    info: dict = field(default_factory=dict)
    reason: str = ""
    failures: list[str] = field(default_factory=list)


def choose_base(project: Project, runner_class: str, explicit: str | None,
                env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """``(commit, where it came from)`` of the A/B base (see the module's docstring)."""
    root = project.root
    if explicit:
        return resolve(root, explicit), f"--gate-base {explicit}"
    target = env.get("GITHUB_BASE_REF") or None
    folder = project.baselines_dir
    own = folder / f"{runner_class}.json"
    if target is None and own.is_file():
        return resolve(root, load_baseline(own).commit), f"the baseline of {runner_class}"
    commits = {load_baseline(p).commit: p.name for p in sorted(folder.glob("*.json"))} if target is None else {}
    if commits:
        resolved = {resolve(root, c): name for c, name in commits.items()}
        newest = max(resolved, key=lambda c: commit_time(root, c))
        return newest, f"the newest baseline ({resolved[newest]}; none for {runner_class})"
    found = default_base(root, project.config.base_branch, target)
    if found is None:
        raise RevisionError(f"no baseline in {folder} names a base revision and HEAD has no parent: pass "
                            "--gate-base REV, or record one with `rps-infer baseline`")
    return found


class Harness:
    """Measures and judges the cases of one run."""

    def __init__(self, project: Project, settings: Settings, config: GateConfig | None = None) -> None:
        self.project, self.settings = project, settings
        self.config = config or project.config.gate
        self.runner_class = settings.runner_class or machine.runner_class()
        self.notices: list[str] = []
        self.base_commit: str | None = None
        self.judge: GateJudge | None = None
        self.mode = "plain"
        self._runner: InProcessRunner | None = None
        self.ab: ABGate | None = None
        self.failures: list[str] = []  # what failed the run as a whole (set by finish)
        if settings.mode not in MODES:
            raise ConfigError("--gate-mode", "<option>", " or ".join(MODES), repr(settings.mode))
        if settings.gate:
            self._choose_mode()

    # -- mode -----------------------------------------------------------------------------
    def _choose_mode(self) -> None:
        history = has_history(self.project.root)
        if self.settings.mode == "stored" or (self.settings.mode == "auto" and not history):
            self._use_stored("--gate-mode stored" if self.settings.mode == "stored" else "no git history here")
            return
        if not history:
            raise RevisionError(f"--gate-mode ab needs git history; {self.project.root} has none "
                                "(use --gate-mode stored)")
        try:
            self.base_commit, source = choose_base(self.project, self.runner_class, self.settings.base)
        except (RevisionError, ConfigError) as exc:
            self._missing_base(str(exc))
            return
        self.mode = "ab"
        self.judge = GateJudge(self.config, "ab")
        self.ab = ABGate(self.project, self.settings, self.config, self.judge, self.base_commit)
        self.notices.append(f"A/B against {self.base_commit[:10]} ({source}), same run, this machine")

    def _missing_base(self, problem: str) -> None:
        if not self.settings.allow_missing_base:
            raise RevisionError(f"latency gate: {problem}")
        self._use_stored(f"the base revision is unusable ({problem}); --gate-allow-missing-base")

    def _use_stored(self, why: str) -> None:
        self.mode, self.ab = "stored", None
        path = self.settings.baseline_file or self.project.baselines_dir / f"{self.runner_class}.json"
        baseline: BaselineFile | None = None
        if path.is_file():
            baseline = load_baseline(path)
            self.notices.append(f"stored numbers of {path.name} (commit {baseline.commit[:10]}): {why}")
        else:
            self.notices.append(f"stored mode ({why}) but no baseline {path.name}: nothing can be compared")
        self.judge = GateJudge(self.config, "stored", baseline)

    # -- measuring ------------------------------------------------------------------------
    def builder(self):
        """The in-process :class:`~rps_infer.bench.cases.CaseBuilder` (backends shared by the run)."""
        return self._inprocess().builder

    def prepare_here(self, case: Case):
        """The case built in this process (``--benchmark-disable``: run once as a smoke test)."""
        return self._inprocess().prepare(case)

    def measure(self, case: Case, clock: Clock = default_clock) -> Measurement:
        """Time ``case`` as this run's mode says and judge it."""
        if self.ab is not None:
            try:
                return self._measure_ab(case)
            except RevisionError as exc:  # the base cannot run: fail, or fall back to stored numbers
                self._missing_base(str(exc))
        try:
            samples, info = self._inprocess().run(case, clock)
        except CaseUnavailableError as exc:
            return Measurement(case, "unavailable", reason=str(exc))
        except CaseUnsupportedError as exc:
            return Measurement(case, "unsupported", reason=str(exc))
        except CaseParityError as exc:
            return Measurement(case, "parity", reason=str(exc))
        measured = Measurement(case, "measured", samples, info=info)
        if self.mode == "stored":
            measured.row = self.judge.judge_stored(case.name, case.group, statistics.median(samples), min(samples))
            self._fail_on(measured)
        return measured

    def _measure_ab(self, case: Case) -> Measurement:
        result, row = self.ab.measure(case)
        if result.status in ("unavailable", "unsupported", "parity", "error"):
            return Measurement(case, result.status, reason=result.reason)
        measured = Measurement(case, "new" if result.status == "new" else "measured", result.head_samples, row,
                               result.info, result.reason)
        self._fail_on(measured)
        return measured

    def _inprocess(self) -> InProcessRunner:
        """The runner of this process, the declared models built first (those not up to date)."""
        if self._runner is None:
            from rps_infer import zoo

            entries = self._entries()
            zoo.build([e for e in entries.values() if e.ci or self.settings.all_models])
            self._runner = InProcessRunner(entries, self.settings.threads, self.project.root)
        return self._runner

    def _entries(self) -> dict:
        """The declared models; a run of file cases only (``rps_benchmark``) needs none."""
        if self.settings.models is None and not self.project.config.models:
            return {}
        return self.project.models(self.settings.models)

    def _fail_on(self, measured: Measurement) -> None:
        """Add the lines that fail ``measured``: its regression, the relations it completes."""
        row = measured.row
        if row is not None and row.verdict.fails:
            measured.failures.append(self.regression_line(row))
        for rule in self.judge.completed_relations(measured.case.name):
            line, holds = self.ab.relation(rule) if self.ab is not None else check_relation(rule, self.judge.medians)
            failed = self.judge.relation(line, holds)
            if failed:
                measured.failures.append(f"required speed-up missing: {failed}")

    def regression_line(self, row: GateRow) -> str:
        """The one line a regression fails its case with: case, ratio, interval, what it was compared to."""
        against = f"base {self.base_commit[:10]}" if row.mode == "ab" else "the stored baseline"
        if row.interval is not None:
            iv = row.interval
            return (f"latency regression: {row.case} x{iv.ratio:.3f} [{iv.low:.3f}, {iv.high:.3f}] vs {against} "
                    f"(head {row.head * 1e6:.1f}us, base {row.base * 1e6:.1f}us; fails when the interval lies above "
                    f"x{1 + row.limit:.2f})")
        return (f"latency regression: {row.case} median {row.head * 1e6:.1f}us vs {against} {row.base * 1e6:.1f}us "
                f"(x{row.ratio:.2f}, limit x{1 + row.limit:.2f})")

    # -- end of run -----------------------------------------------------------------------
    def finish(self) -> list[str]:
        """Stop runners and workers; report removed cases; the lines that fail the run."""
        if self._runner is not None:
            self._runner.close()
        failures = []
        if self.judge is not None:
            if self.ab is not None:
                self.ab.finish()
                self.notices += self.ab.notices
            excused = self.mode == "stored" and self.settings.allow_missing_base
            failures = self.judge.finish(excused)
        self.failures = failures
        return failures

