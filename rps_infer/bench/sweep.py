"""``rps-infer bench``: an in-process sweep of backends x batch sizes for humans.

Every backend is first checked for parity against the model's reference at each
batch size; only then is it timed. Timing takes one sample per call (so p99 is a
real per-call percentile) after untimed warm-up calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

import rps_infer.defaults as defaults
from rps_infer.bench.timing import Plan, measure
from rps_infer.errors import ParityError, ProviderUnavailableError
from rps_infer.inputs import InputChoice
from rps_infer.zoo import ZooEntry

EAGER_BASELINE = "pyt-cpu"
NATIVE_BASELINES = ("sklearn-cpu", "xgboost-cpu")  # a classifier's "before": its own runtime


@dataclass
class Row:
    """One backend at one batch size."""

    backend: str
    batch: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    items_per_s: float  # measured: items over the wall time of the timed calls (back to back)
    samples: int
    parity_max_abs: float
    min_us: float = 0.0
    p25_us: float = 0.0
    p75_us: float = 0.0
    stddev_us: float = 0.0
    speedup_vs_eager: float | None = None
    runtime: dict = field(default_factory=dict)
    # With IO binding (onnxrt ...:iobinding): median host->device copy, compute, device->host copy.
    copy_in_us: float | None = None
    compute_us: float | None = None
    copy_out_us: float | None = None


@dataclass
class SweepResult:
    """The rows, the backends skipped here (with reasons) and the settings used."""

    model: str
    threads: int
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the parity checks' (--save-outputs)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"model": self.model, "threads": self.threads, "rows": [asdict(r) for r in self.rows],
                "skipped": self.skipped}


def sweep(entry: ZooEntry, backends: Sequence[str], batch_sizes: Sequence[int], *,
          threads: int = defaults.BENCH_THREADS, budget_s: float = defaults.BENCH_BUDGET_S, min_rounds: int = 20,
          inputs: InputChoice | None = None, progress: Callable[[str], None] | None = None) -> SweepResult:
    """Check parity, then time ``infer`` for every backend x batch size (``budget_s`` seconds of
    calls, at least ``min_rounds``) on ``inputs`` (default: the entry's generator)."""
    result = SweepResult(entry.name, threads)
    reference = entry.reference_backend()
    inputs = inputs or InputChoice(entry.inputs)
    batch_sizes = inputs.batches(reference.input_specs, batch_sizes)
    total, done = len(backends) * len(batch_sizes), 0
    for spec in backends:
        try:
            backend = entry.backend(spec, threads=threads).activate()
        except ProviderUnavailableError as exc:
            result.skipped[spec] = str(exc)
            done += len(batch_sizes)
            continue
        except ParityError as exc:  # a precision variant that does not keep parity is never built
            failures = exc.result.failures() if hasattr(exc.result, "failures") else [str(exc)]
            result.skipped[spec] = f"parity FAILED building the variant, not timed: {failures[0]}"
            done += len(batch_sizes)
            continue
        if getattr(backend, "auto_choice", None):  # --backends X-auto: the choice, out loud
            print(f"{spec}: {backend.auto_choice}", file=sys.stderr)
        runtime = {k: v for k, v in backend.describe().items() if k not in ("inputs", "outputs", "model")}
        for batch in batch_sizes:
            done += 1
            if progress:
                progress(f"[{done}/{total}] {spec} batch {batch}")
            parity = entry.check_parity(backend, spec, (batch,), reference=reference, inputs=inputs)
            for result_ in parity.results.values():
                result.outputs |= {f"reference.{k}.b{batch}": v for k, v in result_.expected.items()}
                result.outputs |= {f"{spec}.{k}.b{batch}": v for k, v in result_.got.items()}
            if not parity:
                result.skipped[f"{spec} b{batch}"] = f"parity FAILED, not timed: {parity.failures()[0]}"
                continue
            feeds = inputs.feeds(backend.input_specs, batch, seed=batch)
            row = _time(backend, feeds, spec, batch, budget_s, min_rounds, parity.max_abs_error(), runtime)
            if getattr(backend, "io_binding", False):
                row.copy_in_us, row.compute_us, row.copy_out_us = _phases(backend, feeds, min(row.samples, 200))
            result.rows.append(row)
        backend.deactivate()
    _add_speedups(result.rows)
    return result


def _time(backend, feeds, spec: str, batch: int, budget_s: float, min_rounds: int, max_abs: float,
          runtime: dict) -> Row:
    def call() -> None:
        backend.infer(feeds)

    call()
    one = float(np.median(measure(call, Plan(rounds=5, iterations=1, warmup=1))))
    rounds = int(np.clip(budget_s / max(one, 1e-7), min_rounds, 20000))
    samples = measure(call, Plan(rounds=rounds, iterations=1, warmup=max(5, rounds // 10))) * 1e6
    p25, p50, p75, p90, p99 = (float(p) for p in np.percentile(samples, [25, 50, 75, 90, 99]))
    # One sample per call, back to back: their sum is the wall time of the timed part.
    return Row(spec, batch, p50, p90, p99, float(samples.mean()), batch * len(samples) / (samples.sum() * 1e-6),
               len(samples), max_abs, min_us=float(samples.min()), p25_us=p25, p75_us=p75,
               stddev_us=float(samples.std(ddof=1)), runtime=runtime)


def _phases(backend, feeds, rounds: int) -> tuple[float, float, float]:
    """Median microseconds of the copy in, compute and copy out of an IO-bound ONNX Runtime call."""
    phases = [backend.infer_phases(feeds)[1] for _ in range(rounds)]
    return tuple(float(np.median([p[k] for p in phases])) * 1e6 for k in ("copy_in", "compute", "copy_out"))


def _add_speedups(rows: list[Row]) -> None:
    """Speedup against PyTorch eager, or for a classifier against its native runtime."""
    names = {r.backend for r in rows}
    before = EAGER_BASELINE if EAGER_BASELINE in names else next((n for n in NATIVE_BASELINES if n in names), None)
    eager = {r.batch: r.p50_us for r in rows if r.backend == before}
    for r in rows:
        if r.batch in eager:
            r.speedup_vs_eager = eager[r.batch] / r.p50_us

