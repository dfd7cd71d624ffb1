"""The latency gate's judgement of one run: each case's row, the relations and the suite verdict.

:class:`GateJudge` holds what the run concluded, as values; it times nothing (the runners
do, :mod:`rps_infer.bench.harness` decides which) and prints nothing (the table is
:mod:`rps_infer.bench.gate_report`'s). Its rules are :mod:`rps_infer.bench.judges.verdicts`,
its settings :class:`~rps_infer.project.GateConfig`. A gated run that judged nothing fails.
"""

from __future__ import annotations

import numpy as np

from rps_infer.bench.judges.baselines import BaselineFile
from rps_infer.bench.judges.verdicts import (
    GateRow,
    SuiteVerdict,
    Verdict,
    check_relation,
    judge_ab,
    judge_stored,
    judge_suite,
)
from rps_infer.bench.runners.ab import ABResult
from rps_infer.project import GateConfig, Relation

COMPARED = (Verdict.OK, Verdict.REGRESSION, Verdict.FASTER)


class GateJudge:
    """The verdicts of one gated run (``mode`` ``ab`` or ``stored``)."""

    def __init__(self, config: GateConfig, mode: str, baseline: BaselineFile | None = None) -> None:
        self.config, self.mode, self.baseline = config, mode, baseline
        self.rows: list[GateRow] = []
        self.medians: dict[str, float] = {}
        self.ab_results: list[tuple[str, ABResult]] = []  # (group, result): the suite verdict's input
        self.relation_lines: list[str] = []
        self.suite: SuiteVerdict | None = None

    def group_of(self, name: str, group: str) -> str:
        """``group``, or ``reference`` for a case the settings report without gating."""
        return "reference" if name in self.config.reported else group

    def judge_ab(self, name: str, group: str, result: ABResult, record: bool = True) -> GateRow | None:
        """The row of an A/B result (None for a case the head could not run); with ``record`` it is kept."""
        group = self.group_of(name, group)
        if record:
            self.ab_results.append((group, result))
        threshold = self.config.threshold(group, name)
        if result.status == "compared":
            row = judge_ab(name, group, result.interval, result.median("base"), result.median("head"), threshold)
        elif result.status == "new":
            head = float(np.median(result.head_samples)) if result.head_samples else None
            row = GateRow(name, group, "ab", None, head, Verdict.NEW, threshold, note=result.reason)
        else:
            return None
        return self.record(row) if record else row

    def judge_stored(self, name: str, group: str, median: float, fastest: float) -> GateRow:
        """The row of a case timed here, against the stored baseline."""
        group = self.group_of(name, group)
        entry = self.baseline.cases.get(name) if self.baseline else None
        # Stored mode allows what the baseline's own runs spread; a case's own threshold may loosen it.
        threshold = self.baseline.stored_threshold(group) if self.baseline else 0.0
        threshold = max(threshold, self.config.cases.get(name, 0.0))
        return self.record(judge_stored(name, group, median, fastest, entry and entry.median,
                                        entry and entry.min, threshold))

    def removed(self, name: str, group: str, note: str) -> GateRow:
        """A case the base declares and the head no longer does (reported, never failed)."""
        return self.record(GateRow(name, group, self.mode, None, None, Verdict.REMOVED, 0.0, note=note))

    def record(self, row: GateRow) -> GateRow:
        """Keep ``row`` (its head median feeds the relations)."""
        self.rows.append(row)
        if row.head is not None:
            self.medians[row.case] = row.head
        return row

    def replace_last(self, row: GateRow) -> GateRow:
        """Put ``row`` in place of the last row kept (a flagged case after its second look)."""
        self.rows.pop()
        return self.record(row)

    def completed_relations(self, name: str) -> list[Relation]:
        """The relations ``name`` takes part in whose other case has been measured too."""
        return [rule for rule in self.config.relations
                if name in (rule.faster, rule.than) and check_relation(rule, self.medians) is not None]

    def relation(self, line: str, holds: bool) -> str | None:
        """Keep a relation's line; returns it when the relation does not hold."""
        self.relation_lines.append(line)
        return None if holds else line

    def finish(self, excused: bool = False) -> list[str]:
        """The suite verdict, and the lines that fail the run: the suite's regression, or nothing
        compared (``excused``: a run allowed to lack its base). A run whose every case is new
        (a base that declares none of them) passes, saying so."""
        failures = []
        inprocess = [r.log_ratios for g, r in self.ab_results if g == "inprocess" and r.status == "compared"]
        self.suite = judge_suite(inprocess, self.config.suite_limit, self.config.confidence)
        if self.suite is not None and self.suite.fails:
            failures.append(self.suite.line())
        compared = any(r.verdict in COMPARED for r in self.rows)
        every_new = bool(self.rows) and all(r.verdict in (Verdict.NEW, Verdict.REMOVED) for r in self.rows)
        if not excused and not compared and not every_new:
            failures.append(f"latency gate: no case was compared ({len(self.rows)} judged, "
                            f"{sum(r.verdict is Verdict.NEW for r in self.rows)} new): every case was skipped, "
                            "deselected or has no base; a gated run must time something")
        return failures
