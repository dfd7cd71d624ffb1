"""Multi-process throughput: N independent inference processes on one device.

Image models are deployed as several processes per machine (or per GPU), each with
its own session, rather than one process with a large batch. :func:`run_processes`
measures exactly that: N spawned processes load the model, warm up, wait at a common
start signal, then call ``infer`` back to back for the same wall-clock window. The
aggregate FPS is the sum of the processes' frames per second; the scaling efficiency
divides it by N times the single-process FPS measured the same way.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import rps_infer.defaults as defaults
from rps_infer.errors import ProviderUnavailableError, RpsInferError
from rps_infer.zoo import ZooEntry

READY_TIMEOUT_S = 900.0  # loading and warming up (torch.compile can take minutes)


@dataclass
class ProcessRun:
    """N processes running one backend spec at one batch size for the same window."""

    backend: str
    batch: int
    processes: int
    threads: int
    duration_s: float
    fps: float  # aggregate frames per second
    per_process_fps: list[float]
    p50_ms: float  # per-call latency over all processes
    p99_ms: float
    calls: int
    scaling_efficiency: float | None = None  # fps / (processes * single-process fps)
    runtime: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def run_processes(entry: ZooEntry, spec: str, *, processes: int, batch: int = 1, threads: int = defaults.BENCH_THREADS,
                  duration_s: float = defaults.PROCESS_SECONDS, warmup_s: float = 2.0) -> ProcessRun:
    """Run ``processes`` spawned inference processes for ``duration_s`` and aggregate them.

    Raises :class:`ProviderUnavailableError` (from a worker) when the backend cannot run
    here, and :class:`RpsInferError` when a worker fails otherwise or does not get ready.
    """
    if processes < 1:
        raise RpsInferError(f"--processes must be at least 1, got {processes}")
    ctx = mp.get_context("spawn")  # fresh interpreters: no forked framework thread pools
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=_worker, args=(entry, spec, batch, threads, warmup_s, duration_s,
                                                 ready, results, start), daemon=True)
               for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        runtime = {}
        for _ in workers:
            message = _get(ready, READY_TIMEOUT_S, workers, "load and warm up")
            if isinstance(message, BaseException):
                raise message
            runtime = message
        start.set()
        outcomes = [_get(results, duration_s + READY_TIMEOUT_S, workers, "finish") for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
                w.join()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        raise failures[0]
    per_process = [calls * batch / elapsed for calls, elapsed, _ in outcomes]
    latencies = np.concatenate([lat for _, _, lat in outcomes]) * 1e3
    p50, p99 = np.percentile(latencies, [50, 99])
    return ProcessRun(spec, batch, processes, threads, duration_s, float(sum(per_process)), per_process,
                      float(p50), float(p99), int(latencies.size), runtime=runtime)


def scaling(single: ProcessRun, multi: ProcessRun) -> float:
    """Aggregate FPS of ``multi`` over ``multi.processes`` times the FPS of ``single``."""
    return multi.fps / (multi.processes * single.fps)


def _get(q, timeout: float, workers, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return q.get(timeout=1.0)
        except queue.Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RpsInferError(f"an inference process died (exit code {dead[0].exitcode}) "
                                    f"before it could {what}") from None
            if time.monotonic() > deadline:
                raise RpsInferError(f"inference processes did not {what} within {timeout:.0f} s") from None


def _worker(entry: ZooEntry, spec: str, batch: int, threads: int, warmup_s: float, duration_s: float,
            ready, results, start) -> None:
    """One inference process: load, warm up, report ready, run the window, report calls and latencies."""
    from rps_infer.bench.timing import Plan, measure

    endless = Plan(rounds=10**9, iterations=1, warmup=0)  # one sample per call, until the deadline
    try:
        from rps_infer.backends.spec import BackendSpec
        from rps_infer.inputs import make_feeds
        from rps_infer.runtime import pin_threads

        pin_threads(threads, (BackendSpec.parse(spec).backend,))
        backend = entry.backend(spec, threads=threads).activate()
        feeds = make_feeds(backend.input_specs, batch, seed=batch, generator=entry.inputs)

        def call() -> None:
            backend.infer(feeds)

        call()
        measure(call, endless, until=time.perf_counter() + warmup_s)
        info = backend.describe()
        ready.put({k: v for k, v in info.items() if k not in ("inputs", "outputs", "model")})
    except BaseException as exc:
        ready.put(_portable(exc))
        return
    try:
        start.wait()
        began = time.perf_counter()
        latencies = measure(call, endless, until=began + duration_s)
        results.put((len(latencies), time.perf_counter() - began, latencies))
    except BaseException as exc:
        results.put(_portable(exc))


def _portable(exc: BaseException) -> RpsInferError:
    """The worker's failure as an error that crosses the process boundary intact: a missing
    provider stays a :class:`ProviderUnavailableError` (a skip), anything else is named."""
    if isinstance(exc, ProviderUnavailableError):
        return ProviderUnavailableError(str(exc))
    return RpsInferError(f"{type(exc).__name__}: {exc}")
