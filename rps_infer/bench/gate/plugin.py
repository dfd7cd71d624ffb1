"""The latency regression gate: a pytest plugin, enabled with ``--gate``.

Two modes, chosen per run and always named in the gate's table:

- **A/B** (``--gate-mode ab``; what ``auto`` picks in a git checkout): every timed case
  runs in the same run against the *base revision*'s ``rps_infer`` and the working
  tree's, interleaved in worker processes (:mod:`rps_infer.bench.gate.ab`), whatever the
  machine. The base is ``--gate-base REV``, else the ``commit`` of this runner class's
  baseline, else the newest ``commit`` among the committed baselines. A base that cannot
  be found or run fails the run with one line saying how to fix it, unless
  ``--gate-allow-missing-base`` (then: stored mode, said so).
- **stored** (``--gate-mode stored``; ``auto`` without git history): the medians of this
  run against ``benchmarks/baselines/<runner-class>.json``, only meaningful on that
  machine class; allowances from the baseline's own run-to-run spread.

Verdicts are :mod:`rps_infer.bench.gate.verdicts`; settings are ``[tool.rps_infer.gate]``
(:class:`rps_infer.bench.gate.schemas.GateConfig`). A gated run that compared nothing fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rps_infer.bench import machine
from rps_infer.bench.gate.ab import ABResult, ABSession, measure_inprocess
from rps_infer.bench.gate.revisions import Tree, commit_time, has_history, materialise, resolve
from rps_infer.bench.gate.schemas import BaselineFile, GateConfig, Relation, load_baseline, load_gate_config
from rps_infer.bench.gate.verdicts import (
    GateRow,
    SuiteVerdict,
    Verdict,
    check_relation,
    judge_ab,
    judge_relation,
    judge_stored,
    judge_suite,
)
from rps_infer.errors import ConfigError, RevisionError
from rps_infer.tables import render, us

GATE_KEY = pytest.StashKey["Gate"]()
COMPARED = (Verdict.OK, Verdict.REGRESSION, Verdict.FASTER)
MAX_CONFIRMATIONS = 8  # fresh worker sessions per run for second looks at flagged cases


def base_revision(root: Path, runner_class: str, explicit: str | None) -> tuple[str, str]:
    """``(commit, where it came from)``: ``explicit``, this runner class's baseline commit,
    or the newest commit among the committed baselines."""
    if explicit:
        return resolve(root, explicit), f"--gate-base {explicit}"
    folder = root / "benchmarks" / "baselines"
    own = folder / f"{runner_class}.json"
    if own.is_file():
        return resolve(root, load_baseline(own).commit), f"the baseline of {runner_class}"
    commits = {load_baseline(p).commit: p.name for p in sorted(folder.glob("*.json"))}
    if not commits:
        raise RevisionError(f"no baseline in {folder} names a base revision: pass --gate-base REV, "
                            "or record one with `make baseline`")
    resolved = {resolve(root, c): name for c, name in commits.items()}
    newest = max(resolved, key=lambda c: commit_time(root, c))
    return newest, f"the newest committed baseline ({resolved[newest]}; none for {runner_class})"


class Gate:
    """Judges each timed case, in the mode chosen for this run; holds the table's rows."""

    def __init__(self, root: Path, config: GateConfig, *, mode: str = "auto", base: str | None = None,
                 allow_missing_base: bool = False, runner_class: str | None = None,
                 baseline_file: Path | None = None) -> None:
        self.root, self.config = root, config
        self.runner_class = runner_class or machine.runner_class()
        self.allow_missing_base = allow_missing_base
        self.rows: list[GateRow] = []
        self.medians: dict[str, float] = {}
        self.cases: dict[str, dict] = {}  # the descriptions of the cases timed A/B, for relations
        self.relation_lines: list[str] = []
        self.ab_results: list[tuple[str, ABResult]] = []  # (group, result)
        self.failures: list[str] = []
        self._confirmations = 0
        self.suite: SuiteVerdict | None = None
        self.notices: list[str] = []
        self.baseline: BaselineFile | None = None
        self.base_commit: str | None = None
        self._session: ABSession | None = None
        self._baseline_file = baseline_file
        if mode not in ("auto", "ab", "stored"):
            raise ConfigError("--gate-mode", "<option>", "auto, ab or stored", repr(mode))
        if mode == "stored" or (mode == "auto" and not has_history(root)):
            self._use_stored("--gate-mode stored" if mode == "stored" else "this checkout has no git history")
            return
        if not has_history(root):
            raise RevisionError(f"--gate-mode ab needs git history; {root} has none (use --gate-mode stored)")
        self.mode = "ab"
        try:
            self.base_commit, source = base_revision(root, self.runner_class, base)
        except (RevisionError, ConfigError) as exc:
            self._missing_base(str(exc))
            return
        self.notices.append(f"A/B against {self.base_commit[:10]} ({source}), same run, this machine")

    def _missing_base(self, problem: str) -> None:
        if not self.allow_missing_base:
            raise RevisionError(f"latency gate: {problem}")
        self._use_stored(f"the base revision is unusable ({problem}); --gate-allow-missing-base")

    def _use_stored(self, why: str) -> None:
        self.mode = "stored"
        self._session = None
        path = self._baseline_file or self.root / "benchmarks" / "baselines" / f"{self.runner_class}.json"
        if path.is_file():
            self.baseline = load_baseline(path)
            self.notices.append(f"stored numbers of {path.name} (commit {self.baseline.commit[:10]}): {why}")
        else:
            self.notices.append(f"stored mode ({why}) but no baseline {path.name}: nothing can be compared")

    # -- A/B ------------------------------------------------------------------------------
    def session(self, *, threads: int, tensorflow: bool, all_models: bool) -> ABSession | None:
        """The running A/B session (started on first use); None once the gate fell back to stored."""
        if self.mode != "ab":
            return None
        if self._session is None:
            config = self.config
            try:
                base = materialise(self.root, self.base_commit, "base")
                head = Tree(self.root, None, "head")
                session = ABSession(base, head, blocks=config.blocks, block_seconds=config.block_seconds,
                                    case_seconds=config.case_seconds, interleave=config.interleave,
                                    workers=config.workers, threads=threads, tensorflow=tensorflow,
                                    confidence=config.confidence, pin=config.pin)
                session.start(all_models=all_models)
            except RevisionError as exc:
                if not self.allow_missing_base:  # one line and a failed run, not a traceback per case
                    pytest.exit(f"latency gate: {exc}", returncode=pytest.ExitCode.TESTS_FAILED)
                self._missing_base(str(exc))
                return None
            self._session = session
        return self._session

    def measure_ab(self, session: ABSession, name: str, group: str, case: dict) -> tuple[ABResult, GateRow | None]:
        """Time ``case`` A/B and judge it; a REGRESSION must be confirmed by fresh workers.

        The interval resamples blocks, not processes: a worker can carry a layout or state
        that makes it a few percent slower than its twin for the whole run (seen: a
        scikit-learn forest x1.08 [1.065, 1.096] between identical trees, late in a full run,
        x1.00 in fresh processes). So a flagged case is timed again in new worker processes
        and fails only if that look flags it too (up to ``MAX_CONFIRMATIONS`` fresh sessions
        per run; later flags get their second look in the running workers).
        """
        self.cases[name] = case
        result = session.measure(name, case)
        row = self.judge_ab(name, group, result)
        if row is None or not row.verdict.fails:
            return result, row
        self._confirmations += 1
        if self._confirmations <= MAX_CONFIRMATIONS:
            with session.fresh() as fresh:
                second = fresh.measure(name, case)
            where = "fresh workers"
        else:
            second, where = session.measure(name, case), "a second look (no fresh workers left)"
        self.rows.pop()
        first = row.interval
        again = self.judge_ab(name, group, second, record=False)
        if again is not None and again.verdict.fails:
            note = f"confirmed by {where}; first look x{first.ratio:.3f} [{first.low:.3f}, {first.high:.3f}]"
            return second, self._record(replace(again, note=note))
        look = "-" if again is None or again.interval is None else \
            f"x{again.interval.ratio:.3f} [{again.interval.low:.3f}, {again.interval.high:.3f}]"
        return result, self._record(replace(row, verdict=Verdict.OK,
                                            note=f"flagged, not confirmed by {where}: {look}"))

    def measure_files(self, name: str, group: str, base: Callable[[], object],
                      head: Callable[[], object]) -> tuple[ABResult, GateRow | None]:
        """Time two callables (a model file at the base revision and in the working tree, run by
        the same code) A/B in this process and judge them; a flagged case gets a second look."""
        config = self.config

        def look() -> ABResult:
            return measure_inprocess(name, base, head, blocks=config.blocks, block_seconds=config.block_seconds,
                                     case_seconds=config.case_seconds, interleave=config.interleave,
                                     confidence=config.confidence)

        result = look()
        row = self.judge_ab(name, group, result)
        if row is None or not row.verdict.fails:
            return result, row
        self.rows.pop()
        second = look()
        again = self.judge_ab(name, group, second, record=False)
        if again is not None and again.verdict.fails:
            return second, self._record(replace(again, note="confirmed by a second look"))
        return result, self._record(replace(row, verdict=Verdict.OK, note="flagged, not confirmed by a second look"))

    def judge_ab(self, name: str, group: str, result: ABResult, record: bool = True) -> GateRow | None:
        """Judge an A/B result and (with ``record``) keep it (None for a case the head could not run)."""
        if name in self.config.reported:
            group = "reference"
        if record:
            self.ab_results.append((group, result))
        threshold = self.config.threshold(group)
        if result.status == "compared":
            row = judge_ab(name, group, result.interval, result.median("base"), result.median("head"), threshold)
            return self._record(row) if record else row
        if result.status != "new":
            return None
        row = GateRow(name, group, "ab", None, None, Verdict.NEW, threshold, note=result.reason)
        return self._record(row) if record else row

    # -- stored -----------------------------------------------------------------------------
    def judge_stored(self, name: str, group: str, median: float, fastest: float) -> GateRow:
        """Judge a case timed in this process against the stored baseline."""
        group = "reference" if name in self.config.reported else group
        entry = self.baseline.cases.get(name) if self.baseline else None
        threshold = self.baseline.stored_threshold(group) if self.baseline else 0.0
        return self._record(judge_stored(name, group, median, fastest, entry and entry.median,
                                         entry and entry.min, threshold))

    def _record(self, row: GateRow) -> GateRow:
        self.rows.append(row)
        if row.head is not None:
            self.medians[row.case] = row.head
        return row

    def relation_failures(self, case: str) -> list[str]:
        """The relations ``case`` completes that do not hold."""
        failures = []
        for rule in self.config.relations:
            if case not in (rule.faster, rule.than):
                continue
            checked = check_relation(rule, self.medians)
            if checked is not None and self._session is not None and {rule.faster, rule.than} <= self.cases.keys():
                checked = self._relation_side_by_side(rule)
            if checked is not None:
                self.relation_lines.append(checked[0])
                if not checked[1]:
                    failures.append(checked[0])
        return failures

    def _relation_side_by_side(self, rule: Relation) -> tuple[str, bool]:
        """Judge ``rule`` on its two cases timed interleaved in the head's workers; when that
        says TOO SLOW, fresh workers take a second look and the relation fails only if they agree."""
        name = f"{rule.faster} vs {rule.than}"
        looks = [self._session.measure_pair(name, self.cases[rule.faster], self.cases[rule.than])]
        if looks[0].status == "compared" and not judge_relation(rule, looks[0].interval)[1]:
            with self._session.fresh() as fresh:
                looks.append(fresh.measure_pair(name, self.cases[rule.faster], self.cases[rule.than]))
        if looks[-1].status != "compared":
            return check_relation(rule, self.medians)
        note = f"their own runs' medians: {self.medians[rule.than] / self.medians[rule.faster]:.2f}x"
        if len(looks) == 2:
            first = 1 / looks[0].interval.ratio
            note += f"; {'confirmed' if not judge_relation(rule, looks[1].interval)[1] else 'not confirmed'} " \
                    f"by fresh workers, first look {first:.2f}x"
        return judge_relation(rule, looks[-1].interval, note)

    # -- end of run -------------------------------------------------------------------------
    def finish(self) -> list[str]:
        """Stop the workers, judge the suite; returns the lines that fail the run."""
        if self._session is not None:
            self._session.close()
        failures = []
        inprocess = [r.log_ratios for g, r in self.ab_results if g == "inprocess" and r.status == "compared"]
        self.suite = judge_suite(inprocess, self.config.suite_limit, self.config.confidence)
        if self.suite is not None and self.suite.fails:
            failures.append(self.suite.line())
        excused = self.mode == "stored" and self.allow_missing_base
        if not excused and not any(r.verdict in COMPARED for r in self.rows):
            failures.append(f"latency gate: no case was compared ({len(self.rows)} judged, "
                            f"{sum(r.verdict is Verdict.NEW for r in self.rows)} new): every case was skipped, "
                            "deselected or has no base; a gated run must time something")
        return failures

    def table(self) -> list[str]:
        """The gate's table: per case base, head, ratio, interval, verdict, mode and a note."""
        rows = []
        for r in self.rows:
            iv = r.interval
            interval = f"[{iv.low:.3f}, {iv.high:.3f}]" if iv else "-"
            limit = f"x{1 + r.limit:.2f}" if np.isfinite(r.limit) else "-"
            rows.append((r.case, r.group, us(r.base), us(r.head), "-" if r.ratio is None else f"{r.ratio:.3f}",
                         interval, limit, r.verdict.value, r.mode, r.note or ""))
        # Wide enough never to squeeze a column: a CI log does not wrap, and an id cut to "x…" says nothing.
        table = render(("case", "group", "base", "head", "ratio", "interval", "limit", "verdict", "mode", "note"),
                       rows, numeric=("base", "head", "ratio"), width=1000)
        lines = [f"latency gate ({self.runner_class}, mode {self.mode}): {'; '.join(self.notices)}", table]
        lines += [f"relation: {line}" for line in self.relation_lines]
        if self.suite is not None:
            lines.append(self.suite.line())
        return lines

    def write(self, path: Path) -> None:
        """``path``: the verdicts as JSON; beside it (``.png``) the A/B ratios with their intervals."""
        from rps_infer.bench.plots import plot_ratios
        from rps_infer.util import atomic_write

        data = self.to_dict()
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))
        points = [(r.case, r.interval.ratio, r.interval.low, r.interval.high, 1 + r.limit)
                  for r in self.rows if r.interval is not None]
        if points:
            base = f"base {self.base_commit[:10]}" if self.base_commit else "stored"
            plot_ratios(points, f"latency gate: head / {base}, {self.runner_class}", path.with_suffix(".png"))

    def to_dict(self) -> dict:
        """The whole verdict, JSON-ready (``--gate-json``)."""
        return {"mode": self.mode, "base_commit": self.base_commit, "runner_class": self.runner_class,
                "notices": self.notices, "machine": machine.machine_info(), "config": self.config.model_dump(),
                "rows": [r.to_dict() for r in self.rows], "relations": self.relation_lines,
                "suite": None if self.suite is None else {**self.suite.interval.to_dict(), "fails": self.suite.fails},
                "pairs": {r.case: {"base": r.base, "head": r.head, "plan": r.plan}
                          for _, r in self.ab_results if r.base}}


# -- pytest hooks ------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    """The gate's options."""
    group = parser.getgroup("rps_infer latency gate")
    group.addoption("--gate", action="store_true", help="fail benchmarks that got slower (see --gate-mode)")
    group.addoption("--gate-mode", default="auto", choices=("auto", "ab", "stored"),
                    help="ab: time the base revision and the working tree in the same run; stored: compare "
                    "with baselines/<runner-class>.json; auto (default): ab in a git checkout, else stored")
    group.addoption("--gate-base", default=None, metavar="REV",
                    help="A/B base revision (default: this runner class's baseline commit, else the newest "
                    "baseline commit)")
    group.addoption("--gate-allow-missing-base", action="store_true",
                    help="a base that cannot be found or run falls back to stored mode instead of failing")
    group.addoption("--gate-json", type=Path, default=None, metavar="PATH",
                    help="write the gate's verdicts to PATH and a plot of the ratios to PATH with .png")
    group.addoption("--runner-class", default=None,
                    help="baseline name (default: derived from this machine, e.g. cpu-x86_64-2c-amd-epyc)")
    group.addoption("--gate-baseline", type=Path, default=None,
                    help="stored mode: compare with this baseline file")


def pytest_configure(config: pytest.Config) -> None:
    """Create the gate when --gate is given; a bad setting or base is a usage error (one line)."""
    if not config.getoption("--gate"):
        return
    root = Path(config.rootpath)
    try:
        config.stash[GATE_KEY] = Gate(
            root, load_gate_config(root), mode=config.getoption("--gate-mode"),
            base=config.getoption("--gate-base"), allow_missing_base=config.getoption("--gate-allow-missing-base"),
            runner_class=config.getoption("--runner-class"), baseline_file=config.getoption("--gate-baseline"))
    except (RevisionError, ConfigError) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Calibration cases run first (the machine's yardstick before anything else)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("calibration") else 1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Judge the suite, close the workers, fail a run that compared nothing; write --gate-json."""
    gate = gate_of(session.config)
    if gate is None:
        return
    gate.failures = failures = gate.finish()
    if failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = session.config.getoption("--gate-json")
    if path is not None:
        gate.write(path)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the gate's table (and what failed the run as a whole) before pytest's summary line."""
    gate = gate_of(config)
    if gate is None:
        return
    terminalreporter.section("latency gate")
    for line in gate.table():
        for part in line.splitlines():
            terminalreporter.write_line(part)
    for line in getattr(gate, "failures", []):
        terminalreporter.write_line(line, red=True, bold=True)


def gate_of(config: pytest.Config) -> Gate | None:
    """The active gate, or None without --gate."""
    return config.stash.get(GATE_KEY, None)
