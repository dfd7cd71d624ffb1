"""``rps-infer soak``: mixed traffic against a running server for a while, watched over time.

Client processes (spawned; each with several client threads, one channel per thread)
cycle through Predict (policy), BatchPredict (value, 16 rows), ModelInfer (policy, 1
row) and ModelInfer (value, 8 rows), closed loop. Per interval the report gives
requests, errors, req/s, p50/p99 and the server's resident memory (the sum over the
server process and its workers, from /proc). A call still unanswered after
``STUCK_S`` seconds ends with DEADLINE_EXCEEDED and is counted as stuck.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

import rps_infer.defaults as defaults
from rps_infer import tables
from rps_infer.bench.loadgen.generator import ClientPool, LoadSpec, process_tree

MIX = (("neural", "policy", 1), ("neural", "value", 16), ("v2", "policy", 1), ("v2", "value", 8))
STUCK_S = 10.0
STARTUP_S = 2.0  # spawn + imports of the client processes


@dataclass
class SoakWindow:
    """One interval of the run (``t`` seconds since the load began, end of the window)."""

    t: float
    requests: int
    errors: int
    req_per_s: float
    p50_us: float
    p99_us: float
    rss_mb: float | None


@dataclass
class SoakResult:
    """The whole run: windows, totals, errors by status, memory growth after warm-up."""

    target: str
    duration_s: float
    warmup_s: float
    concurrency: int
    processes: int
    requests: int
    errors: dict[str, int]
    stuck: int
    req_per_s: float
    p50_us: float
    p99_us: float
    rss_after_warmup_mb: float | None
    rss_end_mb: float | None
    rss_max_mb: float | None
    windows: list[SoakWindow] = field(default_factory=list)

    @property
    def rss_growth(self) -> float | None:
        """Resident memory at the end over resident memory right after warm-up, minus 1."""
        if not self.rss_after_warmup_mb or self.rss_end_mb is None:
            return None
        return self.rss_end_mb / self.rss_after_warmup_mb - 1.0

    def to_dict(self) -> dict:
        """JSON-ready, with the growth."""
        return {**asdict(self), "rss_growth": self.rss_growth}


def rss_mb(pids: list[int]) -> float:
    """Resident memory (MiB) of ``pids`` and their descendants."""
    total = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                with open(f"/proc/{pid}/status", encoding="ascii") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError):
                continue
    return total / 1024


def run_soak(target: str, *, duration_s: float, concurrency: int, processes: int | None = None,
             server_pids: list[int] | None = None, warmup_s: float = defaults.SOAK_WARMUP_S,
             interval_s: float = defaults.SOAK_INTERVAL_S, progress=None) -> SoakResult:
    """Run the mix from ``concurrency`` client threads in ``processes`` processes for
    ``warmup_s + duration_s`` seconds; memory is sampled every ``interval_s``."""
    if duration_s <= 0 or concurrency < 1 or interval_s <= 0:
        raise ValueError("duration and interval must be positive, concurrency at least 1")
    mix = [LoadSpec(target, api, model, batch, 1, 0) for api, model, batch in MIX]
    pool = ClientPool(mix, concurrency, warmup_s + duration_s, processes, timeout=STUCK_S, startup_s=STARTUP_S)
    rss: list[tuple[float, float]] = []  # (seconds since begin, MiB)
    while (now := time.monotonic()) < pool.end:
        if now >= pool.begin and server_pids:
            rss.append((now - pool.begin, rss_mb(server_pids)))
            if progress:
                progress(f"soak {now - pool.begin:5.1f}/{warmup_s + duration_s:g} s, server RSS {rss[-1][1]:.0f} MiB")
        time.sleep(min(interval_s, max(0.0, pool.end - time.monotonic())))
    if server_pids:
        rss.append((time.monotonic() - pool.begin, rss_mb(server_pids)))
    records = pool.records()
    return _summarise(target, duration_s, warmup_s, concurrency, len(pool.procs), interval_s, records, rss)


def _summarise(target, duration_s, warmup_s, concurrency, processes, interval_s, records, rss) -> SoakResult:
    counted = [r for r in records if r[0] > warmup_s]
    ok = np.array([r[1] for r in counted if r[2] == "OK"])
    errors = Counter(r[2] for r in counted if r[2] != "OK")
    p50, p99 = (np.percentile(ok, [50, 99]) * 1e6).tolist() if ok.size else (0.0, 0.0)
    after = [m for t, m in rss if t >= warmup_s]
    result = SoakResult(target, duration_s, warmup_s, concurrency, processes, len(counted), dict(errors),
                        errors.get("DEADLINE_EXCEEDED", 0), len(counted) / duration_s, p50, p99,
                        after[0] if after else None, after[-1] if after else None, max(after) if after else None)
    edges = np.arange(interval_s, warmup_s + duration_s + interval_s / 2, interval_s)
    for lo, hi in zip(edges - interval_s, edges, strict=True):
        window = [r for r in records if lo < r[0] <= hi]
        lat = np.array([r[1] for r in window if r[2] == "OK"])
        w50, w99 = (np.percentile(lat, [50, 99]) * 1e6).tolist() if lat.size else (0.0, 0.0)
        memory = [m for t, m in rss if lo < t <= hi]
        result.windows.append(SoakWindow(float(hi), len(window), sum(r[2] != "OK" for r in window),
                                         len(window) / interval_s, w50, w99, memory[-1] if memory else None))
    return result


def summary_lines(result: SoakResult) -> list[str]:
    """The console report: one line per window, then the totals."""
    columns = ("t s", "req", "err", "req/s", "p50 us", "p99 us", "RSS MiB")
    rows = [(f"{w.t:.1f}", w.requests, w.errors, f"{w.req_per_s:.0f}", f"{w.p50_us:.0f}", f"{w.p99_us:.0f}",
             "-" if w.rss_mb is None else f"{w.rss_mb:.0f}") for w in result.windows]
    lines = tables.render(columns, rows, numeric=columns).splitlines()
    growth = "-" if result.rss_growth is None else f"{result.rss_growth:+.1%}"
    lines.append(f"after {result.warmup_s:g} s warm-up, {result.duration_s:g} s at concurrency {result.concurrency} "
                 f"({result.processes} client processes): {result.requests} requests, {result.req_per_s:.0f} req/s, "
                 f"p50 {result.p50_us:.0f} us, p99 {result.p99_us:.0f} us, errors {result.errors or 0}, "
                 f"stuck {result.stuck}, server RSS {result.rss_after_warmup_mb or 0:.0f} -> "
                 f"{result.rss_end_mb or 0:.0f} MiB ({growth})")
    return lines
