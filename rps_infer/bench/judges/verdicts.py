"""The latency gate's rules and verdicts, as values.

- :func:`judge_ab`: a case timed A/B is a REGRESSION when the lower confidence bound of
  its head/base ratio lies above ``1 + threshold`` of its group.
- :func:`judge_stored`: a case compared with stored numbers is a REGRESSION when both its
  median and its fastest round exceed the baseline's by more than the group's allowance.
- :func:`judge_suite`: the geometric mean of the in-process ratios, per block pair, with
  its own interval: its lower bound above ``1 + suite_limit`` fails the run.
- :func:`check_relation`: a speed-up the suite must show within one run, from the two
  cases' own medians; :func:`judge_relation` the same, from the two timed side by side.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass

import numpy as np

from rps_infer.bench.judges.stats import Interval, log_interval
from rps_infer.project import Relation


class Verdict(enum.Enum):
    """What the gate concluded about one case."""

    OK = "ok"
    REGRESSION = "REGRESSION"
    FASTER = "faster"  # significantly faster: reported, never failed
    NEW = "new"  # the base cannot run it (added after the base)
    REMOVED = "removed"  # the base declares it, the head no longer does
    NO_BASELINE = "no baseline"  # stored mode: the baseline has no such case
    REPORTED = "reported"  # a reference case: context, never failed
    CONTROL = "control"  # a calibration case: bare onnxruntime, the same code on both sides

    @property
    def fails(self) -> bool:
        """Whether this verdict fails the case."""
        return self is Verdict.REGRESSION


@dataclass(frozen=True)
class GateRow:
    """One line of the gate's table: base and head are seconds per call (medians)."""

    case: str
    group: str
    mode: str  # "ab" or "stored"
    base: float | None
    head: float | None
    verdict: Verdict
    limit: float  # the group's allowed slowdown (0.05 = 5 %)
    interval: Interval | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """head / base: the A/B estimate, or the ratio of the medians in stored mode."""
        if self.interval is not None:
            return self.interval.ratio
        return None if not self.base or self.head is None else self.head / self.base

    def to_dict(self) -> dict:
        """JSON-ready."""
        data = asdict(self)
        data.update(verdict=self.verdict.value, ratio=self.ratio,
                    interval=None if self.interval is None else self.interval.to_dict())
        return data


def _unjudged(group: str) -> Verdict | None:
    return {"reference": Verdict.REPORTED, "calibration": Verdict.CONTROL}.get(group)


def judge_ab(case: str, group: str, interval: Interval, base: float, head: float, threshold: float) -> GateRow:
    """The verdict of a case timed A/B."""
    verdict = _unjudged(group)
    if verdict is None:
        if interval.low > 1.0 + threshold:
            verdict = Verdict.REGRESSION
        elif interval.high < 1.0 / (1.0 + threshold):
            verdict = Verdict.FASTER
        else:
            verdict = Verdict.OK
    return GateRow(case, group, "ab", base, head, verdict, threshold, interval)


def judge_stored(case: str, group: str, median: float, fastest: float, base_median: float | None,
                 base_fastest: float | None, threshold: float) -> GateRow:
    """The verdict of a case against stored numbers (same machine class only)."""
    if base_median is None or base_fastest is None:
        return GateRow(case, group, "stored", None, median, Verdict.NO_BASELINE, threshold)
    verdict = _unjudged(group)
    note = ""
    if verdict is None:
        factor = 1.0 + threshold
        slow = median > base_median * factor and fastest > base_fastest * factor
        verdict = Verdict.REGRESSION if slow else Verdict.OK
        if not slow and median > base_median * factor:
            note = "median beyond the limit, fastest round within: noise"
    return GateRow(case, group, "stored", base_median, median, verdict, threshold, note=note)


@dataclass(frozen=True)
class SuiteVerdict:
    """The geometric mean of the in-process ratios and whether it fails the run."""

    interval: Interval
    cases: int
    limit: float

    @property
    def fails(self) -> bool:
        """Lower bound above 1 + limit."""
        return self.interval.low > 1.0 + self.limit

    def line(self) -> str:
        """One line for the table and the failure message."""
        iv = self.interval
        word = "latency regression: suite" if self.fails else "suite"
        return (f"{word} geometric mean of {self.cases} in-process ratios x{iv.ratio:.3f} "
                f"[{iv.low:.3f}, {iv.high:.3f}] (fails above x{1 + self.limit:.2f}): "
                f"{'REGRESSION' if self.fails else 'ok'}")


def judge_suite(log_ratios_per_case: list[np.ndarray], limit: float, confidence: float) -> SuiteVerdict | None:
    """Per block pair j the mean over cases of log(head/base), then its interval. Only cases
    of the most common block count take part (slow cases get fewer blocks and are judged on
    their own); None without two such cases."""
    lengths = [len(r) for r in log_ratios_per_case if len(r)]
    if not lengths:
        return None
    common = max(set(lengths), key=lambda n: (lengths.count(n), n))
    series = [r for r in log_ratios_per_case if len(r) == common]
    if len(series) < 2:
        return None
    return SuiteVerdict(log_interval(np.mean(np.vstack(series), axis=0), confidence), len(series), limit)


def check_relation(rule: Relation, medians: dict[str, float]) -> tuple[str, bool] | None:
    """``(line, holds)`` once both cases of ``rule`` were measured, else None."""
    if rule.faster not in medians or rule.than not in medians:
        return None
    ratio = medians[rule.than] / medians[rule.faster]
    holds = ratio >= rule.by and math.isfinite(ratio)
    return (f"{rule.faster} is {ratio:.2f}x faster than {rule.than} (required {rule.by:g}x): "
            f"{'ok' if holds else 'TOO SLOW'}", holds)


def judge_relation(rule: Relation, interval: Interval, medians_line: str = "") -> tuple[str, bool]:
    """``(line, holds)`` for ``rule`` from the two cases timed side by side, ``interval`` being
    the faster case's time over the other's per block pair. The speed-up is its inverse; like a
    regression, the relation fails only when its whole interval lies below ``by``."""
    speedup, low, high = 1 / interval.ratio, 1 / interval.high, 1 / interval.low
    holds = high >= rule.by and math.isfinite(speedup)
    extra = f"; {medians_line}" if medians_line else ""
    return (f"{rule.faster} is {speedup:.2f}x [{low:.2f}, {high:.2f}] faster than {rule.than}, side by side "
            f"(required {rule.by:g}x{extra}): {'ok' if holds else 'TOO SLOW'}", holds)
