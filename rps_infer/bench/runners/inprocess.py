"""Timing a case in this process: build it (parity first), then time it with a clock.

A clock takes the timed callable and returns per-call seconds, one per timed round: by
default THE timing loop with a plan sized to the call (:func:`rps_infer.bench.timing.plan_for`);
the pytest adapter hands in pytest-benchmark's own (``benchmark.pedantic``), so its table
and JSON hold the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from rps_infer.bench.cases import Case, CaseBuilder, Prepared
from rps_infer.bench.timing import measure, plan_for

Clock = Callable[[Callable[[], object]], list[float]]


def default_clock(fn: Callable[[], object]) -> list[float]:
    """Per-call seconds of ``fn`` after warm-up, with a plan sized to it."""
    return measure(fn, plan_for(fn)).tolist()


class InProcessRunner:
    """Builds and times cases here; backends and servers are shared by the cases of a run."""

    def __init__(self, entries: Mapping, threads: int = 1, root: Path | None = None) -> None:
        self.builder = CaseBuilder(entries, threads, root=root)

    def prepare(self, case: Case) -> Prepared:
        """The case's timed callable (a ``Case*Error`` when it cannot or must not be timed)."""
        return self.builder.prepare(case.description)

    def run(self, case: Case, clock: Clock = default_clock) -> tuple[list[float], dict]:
        """(per-call seconds, what ran) of ``case``."""
        prepared = self.prepare(case)
        return clock(prepared.fn), prepared.info

    def close(self) -> None:
        """Deactivate backends, stop servers."""
        self.builder.close()
