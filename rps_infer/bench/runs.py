"""What ``rps-infer bench`` runs, as report dicts: the in-process sweep (with multi-process
FPS and the cost of serving), A/B of two revisions, and closed-loop load over gRPC.

Every report names the machine, the command and when it was made; :mod:`rps_infer.bench.report`
writes and prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rps_infer.zoo as zoo
from rps_infer.backends.spec import BackendSpec
from rps_infer.bench import provenance
from rps_infer.bench import report as reports
from rps_infer.bench.machine import machine_info
from rps_infer.errors import RpsInferError
from rps_infer.inputs import InputChoice

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class CostSettings:
    """Multi-process throughput and the cost report (see :mod:`rps_infer.bench.cost`)."""

    processes: int | None = None
    process_seconds: float = 10.0
    cost_per_hour: float | None = None
    target_fps: float = 250.0
    effort_hours: float | None = None
    hourly_rate: float | None = None


def selection(model: str | zoo.ZooEntry, backends: Sequence[str], precision: str) -> tuple[zoo.ZooEntry, list[str]]:
    """The zoo entry (by name, or a user's file as an entry) and backend specs a bench runs (the
    entry's own when none are given), validated before any work."""
    entry = model if isinstance(model, zoo.ZooEntry) else zoo.select(zoo.load_zoo(), [model])[0]
    specs = [BackendSpec.parse(b) for b in backends] or [BackendSpec.parse(b) for b in entry.backends]
    return entry, list(dict.fromkeys(str(s.with_precision(precision)) for s in specs))


def _stamp(report: dict, command: str, entry: zoo.ZooEntry | None = None) -> dict:
    """The report with when, where, by which command and code it was made (and, given the
    entry, the sha256 of each model file it timed)."""
    stamped = {"created": reports.timestamp(), "machine": machine_info(), "command": command,
               "source": provenance.source(), **report}
    if entry is not None:
        stamped["models"] = provenance.model_digests(dict.fromkeys([entry.source, *entry.artifacts().values()]))
    return stamped


def inprocess(entry: zoo.ZooEntry, backends: list[str], batch_sizes: Sequence[int], *, threads: int,
              budget_s: float, cost: CostSettings, command: str, inputs: InputChoice | None = None,
              progress: Progress = None) -> dict:
    """Parity, then per-call latency of every backend x batch size; FPS and cost for image models
    (or when asked)."""
    from rps_infer.bench.sweep import sweep
    from rps_infer.runtime import pin_threads

    zoo.build([entry])
    pin_threads(threads, tuple({BackendSpec.parse(b).backend for b in backends}))
    result = sweep(entry, backends, batch_sizes, threads=threads, budget_s=budget_s, inputs=inputs,
                   progress=progress)
    if not result.rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
        raise RpsInferError(f"nothing was measured ({reasons})")
    report = _stamp(result.to_dict(), command, entry)
    report["_outputs"] = result.outputs  # not written to the report: --save-outputs takes them
    if entry.family == "unet" or cost.processes or cost.cost_per_hour:
        _fps_and_cost(entry, report, cost, threads, progress)
    return report


def _fps_and_cost(entry: zoo.ZooEntry, report: dict, cost: CostSettings, threads: int, progress: Progress) -> None:
    """Add the multi-process runs, the FPS rows and (given a price) the cost rows to ``report``."""
    from rps_infer.bench import cost as costs
    from rps_infer.bench.processes import run_processes, scaling

    runs = []
    for spec in dict.fromkeys(r["backend"] for r in report["rows"]) if cost.processes else ():
        single = None
        for n in (1, cost.processes) if cost.processes > 1 else (1,):
            if progress:
                progress(f"{spec}: {n} process(es) for {cost.process_seconds:g} s")
            run = run_processes(entry, spec, processes=n, threads=threads, duration_s=cost.process_seconds)
            single = single or run
            run.scaling_efficiency = scaling(single, run)
            runs.append(run.to_dict())
    report["processes"] = runs
    fps = costs.fps_rows(report["rows"], runs)
    report["fps"] = costs.as_dicts(fps)
    if cost.cost_per_hour:
        rows = costs.cost_rows(fps, cost_per_hour=cost.cost_per_hour, target_fps=cost.target_fps,
                               effort_hours=cost.effort_hours, hourly_rate=cost.hourly_rate)
        report["cost"] = {"cost_per_hour": cost.cost_per_hour, "target_fps": cost.target_fps,
                          "hours_per_month": costs.HOURS_PER_MONTH, "effort_hours": cost.effort_hours,
                          "hourly_rate": cost.hourly_rate, "rows": costs.as_dicts(rows)}


def ab(revisions: Sequence[str], entry: zoo.ZooEntry, backends: list[str], batch_sizes: Sequence[int], *,
       threads: int, command: str, progress: Progress = None) -> dict:
    """``BASE [HEAD]``: every backend x batch size timed against both revisions in one run."""
    from rps_infer.bench.abbench import ab_sweep
    from rps_infer.project import Project

    if len(revisions) > 2:
        raise RpsInferError(f"--ab takes BASE [HEAD], got {len(revisions)} revisions")
    report = ab_sweep(Project.find(), revisions[0], revisions[1] if len(revisions) > 1 else None, entry.name,
                      backends, batch_sizes, threads=threads, progress=progress)
    return _stamp(report, command, entry)


def grpc(target: str, apis: Sequence[str], model: str, batch_sizes: Sequence[int], concurrency: Sequence[int], *,
         command: str, progress: Progress = None, **load) -> dict:
    """Load against a running server (closed loop, or open loop at ``rate``), and beside it the
    echo floor, the naive server and in-process timing when asked (``load``: the keyword
    arguments of :func:`rps_infer.bench.loadgen.sweep.grpc_sweep`)."""
    from rps_infer.bench.loadgen.generator import APIS
    from rps_infer.bench.loadgen.sweep import grpc_sweep

    if not apis or any(a not in APIS for a in apis):
        raise RpsInferError(f"--api takes {' or '.join(APIS)} (comma-separated), got {','.join(apis)!r}")
    rows = grpc_sweep(target, apis, model, batch_sizes, concurrency, progress=progress, **load)
    return _stamp({"kind": "grpc", "model": model, "target": target, "duration_s": load["duration_s"],
                   "warmup_s": load["warmup_s"], "rate": load.get("rate"), "rows": rows}, command)
