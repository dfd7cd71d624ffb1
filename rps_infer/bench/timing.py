"""Timing plans and THE timing loop (``time.perf_counter``; never ``time.time``).

The benchmark suite lets pytest-benchmark time with a :class:`Plan`; the gate's workers,
``rps-infer bench`` and the multi-process runs use :func:`measure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import rps_infer.defaults as defaults


@dataclass(frozen=True)
class Plan:
    """How to time one case: ``warmup`` untimed rounds, then ``rounds`` timed rounds of
    ``iterations`` calls each; a sample is a round's time divided by ``iterations``."""

    rounds: int
    iterations: int
    warmup: int


def plan_for(fn: Callable[[], object], *, min_round_s: float = 2e-4, budget_s: float = defaults.BENCH_BUDGET_S,
             min_rounds: int = 15, max_rounds: int = 2000) -> Plan:
    """Choose iterations so one round lasts at least ``min_round_s`` (timer noise stays
    below ~0.1 %), and rounds so the timed part lasts about ``budget_s``."""
    fn()  # first call outside any estimate: lazy initialisation, caches
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-7)
    iterations = max(1, int(np.ceil(min_round_s / one)))
    rounds = int(np.clip(budget_s / (one * iterations), min_rounds, max_rounds))
    return Plan(rounds=rounds, iterations=iterations, warmup=max(2, rounds // 10))


def measure(fn: Callable[[], object], plan: Plan, until: float | None = None) -> np.ndarray:
    """Per-call seconds, one sample per timed round; with ``until`` (a ``time.perf_counter``
    instant) the timed rounds stop there, however many ``plan`` allows. THE timing loop."""
    loop = range(plan.iterations)
    for _ in range(plan.warmup):
        for _ in loop:
            fn()
    samples: list[float] = []
    clock = time.perf_counter
    deadline = float("inf") if until is None else until
    start = clock()
    while len(samples) < plan.rounds and start < deadline:
        for _ in loop:
            fn()
        end = clock()
        samples.append((end - start) / plan.iterations)
        start = end
    return np.array(samples)


def estimate(fn: Callable[[], object], seconds: float = 0.03) -> float:
    """Seconds per call after a short warm-up (at least 3 calls or ``seconds``): enough to size a
    round of >= 0.2 ms, which is all it is for."""
    fn()
    first = float(measure(fn, Plan(rounds=1, iterations=1, warmup=0))[0])
    calls = int(np.clip(seconds / max(first, 1e-7), 3, 20000))
    return float(np.median(measure(fn, Plan(rounds=5, iterations=max(1, calls // 5), warmup=0))))


def spin(seconds: float) -> None:
    """Busy-wait ``seconds`` (a sleep would yield the core and distort a CPU benchmark)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
