"""The FPS and cost report of an image model: arithmetic on measured FPS, nothing estimated.

Every FPS figure comes from the sweep and the multi-process runs of the same
``rps-infer bench`` invocation. The prices are the user's inputs (``--cost-per-hour``
for the machine that ran the bench, ``--hourly-rate`` and ``--effort-hours`` for the
engineering time); the report prints them as inputs, next to the results derived
from them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

HOURS_PER_MONTH = 730.0  # 24/7: 8,760 hours a year / 12
EAGER = "pyt-cpu"  # the baseline every saving is measured against (its GPU twin on a GPU runner)


@dataclass
class FpsRow:
    """One backend's measured FPS: batch 1, the best batch, and N processes."""

    backend: str
    fps_b1: float | None
    p50_ms_b1: float | None
    p99_ms_b1: float | None
    best_batch: int | None
    fps_best_batch: float | None
    processes: int | None = None
    fps_processes: float | None = None
    scaling_efficiency: float | None = None
    speedup_vs_eager_b1: float | None = None
    speedup_vs_eager_best: float | None = None

    @property
    def deployed_fps(self) -> tuple[float, str]:
        """The highest FPS this machine measured for the backend, and how it was reached."""
        options = [(self.fps_best_batch, f"1 process, batch {self.best_batch}"),
                   (self.fps_processes, f"{self.processes} processes, batch 1")]
        return max(((f, how) for f, how in options if f), default=(0.0, "not measured"))


@dataclass
class CostRow:
    """What serving with one backend costs on this machine, from its deployed FPS."""

    backend: str
    fps: float
    configuration: str
    usd_per_1000_fps_hours: float
    machines_for_target: int
    monthly_usd: float
    monthly_savings_vs_eager_usd: float | None
    break_even_months: float | None


def fps_rows(sweep_rows: list[dict], process_runs: list[dict]) -> list[FpsRow]:
    """FPS per backend from the sweep rows (``items_per_s`` from the median latency) and the
    multi-process runs (only runs with more than one process)."""
    rows = []
    for backend in dict.fromkeys(r["backend"] for r in sweep_rows):
        mine = [r for r in sweep_rows if r["backend"] == backend]
        b1 = next((r for r in mine if r["batch"] == 1), None)
        best = max(mine, key=lambda r: r["items_per_s"])
        multi = next((p for p in process_runs if p["backend"] == backend and p["processes"] > 1), None)
        rows.append(FpsRow(
            backend,
            b1["items_per_s"] if b1 else None, b1["p50_us"] / 1e3 if b1 else None, b1["p99_us"] / 1e3 if b1 else None,
            best["batch"], best["items_per_s"],
            multi["processes"] if multi else None, multi["fps"] if multi else None,
            multi["scaling_efficiency"] if multi else None))
    eager = next((r for r in rows if r.backend == _eager_of(rows)), None)
    for r in rows:
        if eager and eager.fps_b1 and r.fps_b1:
            r.speedup_vs_eager_b1 = r.fps_b1 / eager.fps_b1
        if eager and eager.fps_best_batch and r.fps_best_batch:
            r.speedup_vs_eager_best = r.fps_best_batch / eager.fps_best_batch
    return rows


def cost_rows(rows: list[FpsRow], *, cost_per_hour: float, target_fps: float, effort_hours: float | None = None,
              hourly_rate: float | None = None) -> list[CostRow]:
    """Cost per 1,000 FPS-hours, machines and monthly cost (24/7) for ``target_fps``, savings
    against PyTorch eager and, given the engineering effort, the months to break even."""
    if cost_per_hour <= 0 or target_fps <= 0:
        raise ValueError("cost per hour and target FPS must be positive")
    out = []
    for r in rows:
        fps, how = r.deployed_fps
        if fps <= 0:
            continue
        machines = math.ceil(target_fps / fps)
        out.append(CostRow(r.backend, fps, how, cost_per_hour * 1000.0 / fps, machines,
                           machines * cost_per_hour * HOURS_PER_MONTH, None, None))
    eager = next((c for c in out if c.backend == _eager_of(rows)), None)
    for c in out:
        if eager is None or c is eager:
            continue
        c.monthly_savings_vs_eager_usd = eager.monthly_usd - c.monthly_usd
        if effort_hours is not None and hourly_rate is not None and c.monthly_savings_vs_eager_usd > 0:
            c.break_even_months = effort_hours * hourly_rate / c.monthly_savings_vs_eager_usd
    return out


def _eager_of(rows: list[FpsRow]) -> str:
    """``pyt-cuda`` when the GPU eager run exists, else ``pyt-cpu``."""
    names = {r.backend for r in rows}
    return "pyt-cuda" if "pyt-cuda" in names else EAGER


def as_dicts(items: list) -> list[dict]:
    """Dataclass rows as JSON-ready dicts."""
    return [asdict(i) for i in items]
