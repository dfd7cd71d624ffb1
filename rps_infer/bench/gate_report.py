"""The latency gate's report of one run: the table a terminal shows, and ``--gate-json``
(the verdicts as JSON and, beside it, a plot of the A/B ratios with their intervals)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rps_infer.bench import machine
from rps_infer.bench.harness import Harness
from rps_infer.tables import render, us

COLUMNS = ("case", "group", "base", "head", "ratio", "interval", "limit", "verdict", "mode", "note")


def table_lines(harness: Harness) -> list[str]:
    """Per case base, head, ratio, interval, verdict, mode and a note; then relations and the suite."""
    judge = harness.judge
    rows = []
    for r in judge.rows:
        iv = r.interval
        interval = f"[{iv.low:.3f}, {iv.high:.3f}]" if iv else "-"
        limit = f"x{1 + r.limit:.2f}" if np.isfinite(r.limit) and r.verdict.value != "removed" else "-"
        rows.append((r.case, r.group, us(r.base), us(r.head), "-" if r.ratio is None else f"{r.ratio:.3f}",
                     interval, limit, r.verdict.value, r.mode, r.note or ""))
    # Wide enough never to squeeze a column: a CI log does not wrap, and an id cut to "x…" says nothing.
    table = render(COLUMNS, rows, numeric=("base", "head", "ratio"), width=1000)
    lines = [f"latency gate ({harness.runner_class}, mode {harness.mode}): {'; '.join(harness.notices)}", table]
    lines += [f"relation: {line}" for line in judge.relation_lines]
    if judge.suite is not None:
        lines.append(judge.suite.line())
    return lines


def to_dict(harness: Harness) -> dict:
    """The whole verdict, JSON-ready."""
    judge = harness.judge
    return {"mode": harness.mode, "base_commit": harness.base_commit, "runner_class": harness.runner_class,
            "notices": harness.notices, "machine": machine.machine_info(), "config": harness.config.model_dump(),
            "rows": [r.to_dict() for r in judge.rows], "relations": judge.relation_lines,
            "suite": None if judge.suite is None else {**judge.suite.interval.to_dict(), "fails": judge.suite.fails},
            "pairs": {r.case: {"base": r.base, "head": r.head, "plan": r.plan} for _, r in judge.ab_results if r.base}}


def write(harness: Harness, path: Path) -> None:
    """``path``: the verdicts as JSON; beside it (``.png``) the A/B ratios with their intervals."""
    from rps_infer.bench.plots import plot_ratios
    from rps_infer.util import atomic_write

    data = to_dict(harness)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))
    points = [(r.case, r.interval.ratio, r.interval.low, r.interval.high, 1 + r.limit)
              for r in harness.judge.rows if r.interval is not None]
    if points:
        base = f"base {harness.base_commit[:10]}" if harness.base_commit else "stored"
        plot_ratios(points, f"latency gate: head / {base}, {harness.runner_class}", path.with_suffix(".png"))
