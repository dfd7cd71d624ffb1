"""Same-run A/B timing of two source trees (asv ``continuous``'s design, interleaved).

The controller (the pytest process, or ``rps-infer bench --ab``) starts long-lived
worker processes, :attr:`~rps_infer.project.GateConfig.workers` per tree, alternately
(base 0, head 0, base 1, head 1 ...), each ``python -m rps_infer _bench-worker`` run in
its own tree's project folder with nothing inherited that could redirect an import. A
tree that carries this project's own ``rps_infer`` is imported from the tree
(``PYTHONPATH``); a user's repository runs the installed ``rps_infer`` on both sides,
on each side's own files (models, settings, the user's own Python code). What to time
comes from the head (case descriptions); how each tree builds it is its code
(:mod:`rps_infer.bench.runners.worker`).

Per case every worker prepares it (parity checked on both sides), then ``blocks`` block
pairs are timed (fewer, but at least 10, where they would take more than
``case_seconds``), never two at once. Pair j runs on worker ``j % workers`` of each tree:
``interleave`` alternating slices per side (base first or head first in the balanced
order BH, BH, HB, HB, ...), each slice timed rounds of >= 0.2 ms (plus 10 % warm-up), the
same rounds x iterations on both sides, the slices of a side together >= ``block_seconds``.

With ``pin`` (and two CPUs or more) every worker runs on the same CPU, the last one this
process may use, and the servers they start on the others: a VM's vCPUs go through slow
phases of their own (a worker that stayed on one ran 25-35 % slower than its twin for a
whole case, unpinned), so all workers share whatever the timing CPU goes through.

A side of a pair counts by its fastest round. On these shared VMs interference only
ever adds time, in bursts of 10-100 ms that move a block's median by up to 2x while its
fastest round stays on the floor (measured: benchmarks/README.md, "The gate"). A pair's
ratio is head/base of the two sides' fastest rounds;
:func:`rps_infer.bench.judges.stats.paired_ratio` gives the estimate (the median of the pairwise
averaged log ratios) and its interval.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rps_infer.bench.judges.stats import Interval, paired_ratio
from rps_infer.bench.runners.revisions import Tree, share_models
from rps_infer.bench.runners.worker import PROTOCOL
from rps_infer.errors import RevisionError, RpsInferError

MIN_ROUND_S = 2e-4  # a timed round lasts at least this long (timer noise < 0.1 %)
MIN_ROUNDS = 5
MIN_BLOCKS = 10  # block pairs per case, however slow the case
START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 900.0  # a build of the zoo, a U-Net precision variant
# Variables that could make a worker import another tree's rps_infer or read another zoo.
SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "RPS_INFER_ZOO")


class WorkerError(RpsInferError):
    """A worker died, timed out or answered nonsense; carries the tail of its stderr."""


@dataclass
class Worker:
    """One ``_bench-worker`` process in one tree."""

    tree: Tree
    index: int
    threads: int = 1
    tensorflow: bool = False
    cpu: int | None = None  # the one CPU every timing worker runs on
    models: str | None = None  # a manifest overriding the project's (relative: to the tree's project folder)

    def start(self) -> None:
        """:meth:`launch` and :meth:`handshake`."""
        self.launch()
        self.handshake()

    def launch(self) -> None:
        """Start the process (its hello is read by :meth:`handshake`)."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        if self.tree.own_package:
            env["PYTHONPATH"] = str(self.tree.path)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        command = [sys.executable, "-m", "rps_infer", "_bench-worker", "--tree", str(self.tree.path),
                   "--threads", str(self.threads), *(["--tensorflow"] if self.tensorflow else []),
                   *(["--cpu", str(self.cpu)] if self.cpu is not None else []),
                   *([] if self.tree.own_package else ["--installed"]),
                   *(["--models", self.models] if self.models else [])]
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, cwd=self.tree.cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.name = f"{self.tree.label}{self.index}"

    def handshake(self) -> None:
        """Read the worker's hello; :class:`RevisionError` for a tree without a worker of this
        protocol, or one that imported another tree's code."""
        try:
            hello = self._read(START_TIMEOUT_S)
        except WorkerError as exc:
            raise RevisionError(f"{self.tree.label} revision {self.tree.describe()} ({self.tree.path}) cannot start "
                                f"the A/B worker (`python -m rps_infer _bench-worker`, protocol {PROTOCOL}); it "
                                "predates the A/B gate or is broken: re-record the baseline with `rps-infer "
                                f"baseline` on a newer commit, or pass --gate-base REV [{exc}]") from None
        if hello.get("error") or hello.get("protocol") != PROTOCOL:
            problem = hello.get("error") or f"speaks protocol {hello.get('protocol')}, expected {PROTOCOL}"
            raise RevisionError(f"{self.tree.label} revision {self.tree.describe()} ({self.tree.path}) cannot run "
                                f"the A/B worker ({problem}); if it predates the A/B gate, re-record the baseline "
                                "with `rps-infer baseline` on a newer commit or pass --gate-base REV")
        self.imported = hello["rps_infer"]

    def request(self, op: str, timeout: float = REQUEST_TIMEOUT_S, **fields) -> dict:
        """Send one request and return the reply; an ``error`` reply raises :class:`WorkerError`."""
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"worker {self.name} is gone: {self.log_tail()}") from None
        reply = self._read(timeout)
        if not reply.get("ok") and reply.get("status") == "error":
            raise WorkerError(f"worker {self.name} ({self.tree.describe()}): {reply.get('reason')}")
        return reply

    def _read(self, timeout: float) -> dict:
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise WorkerError(f"worker {self.name} did not answer within {timeout:.0f} s: {self.log_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"worker {self.name} exited ({self.proc.poll()}): {self.log_tail()}")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise WorkerError(f"worker {self.name} wrote {line[:200]!r}, not a protocol line") from None

    def log_tail(self, chars: int = 1500) -> str:
        """The end of the worker's stderr."""
        self.stderr.seek(0)
        return self.stderr.read()[-chars:].strip()

    def stop(self) -> None:
        """Ask it to exit (it stops its servers), then make sure it is gone."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "exit"}\n')
                self.proc.stdin.close()
                self.proc.wait(30)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):  # a broken pipe has nothing left to flush
                pipe.close()
        self.stderr.close()


@dataclass
class ABResult:
    """One case timed A/B: per block pair the base's and the head's fastest round (seconds per call)."""

    case: str
    status: str  # "compared", "new" (the base cannot run it), "unavailable", "parity" (head failed it)
    reason: str = ""
    base: list[float] = field(default_factory=list)
    head: list[float] = field(default_factory=list)
    head_samples: list[float] = field(default_factory=list)  # every timed round of the head, for reports
    interval: Interval | None = None
    plan: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def log_ratios(self) -> np.ndarray:
        """log(head / base) per block pair."""
        return np.log(np.asarray(self.head) / np.asarray(self.base))

    def median(self, side: str) -> float:
        """Median over the blocks of one side's fastest rounds."""
        return float(np.median(self.base if side == "base" else self.head))


class ABSession:
    """Workers for a base and a head tree, and the interleaved timing of cases on them."""

    def __init__(self, base: Tree, head: Tree, *, blocks: int = 40, block_seconds: float = 0.0125,
                 case_seconds: float = 6.0, interleave: int = 1, workers: int = 2, threads: int = 1,
                 tensorflow: bool = False, confidence: float = 0.90, pin: bool = True,
                 models: str | None = None) -> None:
        self.base, self.head = base, head
        self.models = models
        self.interleave = interleave
        self.blocks, self.block_seconds, self.confidence = blocks, block_seconds, confidence
        self.case_seconds = case_seconds
        self.workers: dict[str, list[Worker]] = {"base": [], "head": []}
        self._specs = (workers, threads, tensorflow)
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpu = allowed[-1] if pin and len(allowed) >= 2 else None
        self._ids = 0

    def start(self, all_models: bool = False, progress=None, models: list[str] | None = None) -> None:
        """Start the workers alternately; build each tree's zoo, or only ``models`` (sharing
        the head's with the base where the recipes are identical)."""
        try:
            self._launch()
            if progress:
                progress("building the head's models")
            self.workers["head"][0].request("build", all_models=all_models, models=models)
            shared = share_models(self.head.path, self.base.path)
            if progress:
                progress("base models shared with the head (same recipe)" if shared else "building the base's models")
            self.workers["base"][0].request("build", all_models=all_models, models=models)
        except BaseException:
            self.close()
            raise

    def _launch(self) -> None:
        """Launch the workers alternately (base 0, head 0, base 1, ...), then read their hellos:
        they import their frameworks side by side."""
        count, threads, tensorflow = self._specs
        for i in range(count):
            for tree in (self.base, self.head):
                worker = Worker(tree, i, threads, tensorflow, self.cpu, self.models)
                self.workers[tree.label].append(worker)
                worker.launch()
        for worker in (*self.workers["base"], *self.workers["head"]):
            worker.handshake()
        self._check_imports()

    def _check_imports(self) -> None:
        """In a user's repository both sides must run one installed ``rps_infer``: only their files differ."""
        from rps_infer import version

        mine = str(Path(version.__file__).resolve().with_name("__init__.py"))
        for worker in (*self.workers["base"], *self.workers["head"]):
            if not worker.tree.own_package and worker.imported != mine:
                raise RevisionError(f"worker {worker.name} imported {worker.imported}, not the installed rps_infer "
                                    f"this run uses ({mine}): both revisions must run the same code")

    def fresh(self) -> ABSession:
        """A new session on the same trees and settings with new worker processes (models are
        built already): a second look that resamples every process-level effect."""
        session = ABSession(self.base, self.head, blocks=self.blocks, block_seconds=self.block_seconds,
                            case_seconds=self.case_seconds, interleave=self.interleave, workers=self._specs[0],
                            threads=self._specs[1], tensorflow=self._specs[2], confidence=self.confidence,
                            pin=self.cpu is not None, models=self.models)
        try:
            session._launch()
        except BaseException:
            session.close()
            raise
        return session

    def close(self) -> None:
        """Stop every worker."""
        for worker in (*self.workers["base"], *self.workers["head"]):
            if getattr(worker, "proc", None) is not None:
                worker.stop()
        self.workers = {"base": [], "head": []}

    def measure(self, name: str, case: dict, light: bool = False) -> ABResult:
        """Prepare ``case`` on every worker, then time it in interleaved block pairs (``light``: the
        fewest pairs, one slice per side: context for a case that is reported, never judged)."""
        self._ids += 1
        case_id = f"c{self._ids}"
        replies = {side: [w.request("prepare", id=case_id, case=case) for w in self.workers[side]]
                   for side in ("head", "base")}
        head_fail = next((r for r in replies["head"] if not r["ok"]), None)
        if head_fail is not None:
            return ABResult(name, head_fail["status"], head_fail["reason"])
        estimate = float(np.median([r["estimate"] for r in replies["head"]]))
        count = len(self.workers["base"])
        base_fail = next((r for r in replies["base"] if not r["ok"]), None)
        if base_fail is not None:  # new in the head: timed there alone, so its latency is reported
            plan = block_plan(estimate, self.block_seconds)
            samples = [t for j in range(MIN_BLOCKS) for t in self.workers["head"][j % count].request(
                "time", id=case_id, **plan)["samples"]]
            return ABResult(name, "new", f"the base cannot run it ({base_fail['status']}: {base_fail['reason']})",
                            head_samples=samples, info=replies["head"][0]["info"])

        def time_side(side: str, j: int, plan: dict[str, int]) -> list[float]:
            return self.workers[side][j % count].request("time", id=case_id, **plan)["samples"]

        return time_pairs(name, estimate, time_side, blocks=MIN_BLOCKS if light else self.blocks,
                          block_seconds=self.block_seconds, case_seconds=self.case_seconds,
                          interleave=1 if light else self.interleave, confidence=self.confidence, workers=count,
                          info=replies["head"][0]["info"])

    def measure_pair(self, name: str, faster: dict, than: dict) -> ABResult:
        """Two cases of the head tree timed against each other in the head's workers, in
        interleaved block pairs (``than`` on the base side, ``faster`` on the head side): a
        relation judged side by side, which medians taken minutes apart cannot be on a VM
        whose speed drifts (seen: a 3.8x relation read as 1.08x in a full run)."""
        self._ids += 1
        ids = {"head": f"c{self._ids}f", "base": f"c{self._ids}t"}
        workers = self.workers["head"]
        estimates = []
        for side, case in (("head", faster), ("base", than)):
            replies = [w.request("prepare", id=ids[side], case=case) for w in workers]
            failed = next((r for r in replies if not r["ok"]), None)
            if failed is not None:
                return ABResult(name, failed["status"], failed["reason"])
            estimates.append(float(np.median([r["estimate"] for r in replies])))

        def time_side(side: str, j: int, plan: dict[str, int]) -> list[float]:
            return workers[j % len(workers)].request("time", id=ids[side], **plan)["samples"]

        return time_pairs(name, float(np.mean(estimates)), time_side, blocks=self.blocks,
                          block_seconds=self.block_seconds, case_seconds=self.case_seconds,
                          interleave=self.interleave, confidence=self.confidence, workers=len(workers))

    def __enter__(self) -> ABSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def time_pairs(name: str, estimate: float, time_side: Callable[[str, int, dict[str, int]], list[float]], *,
               blocks: int, block_seconds: float, case_seconds: float, interleave: int, confidence: float,
               workers: int = 1, info: dict | None = None) -> ABResult:
    """The interleaved block pairs of one case. Pair j times ``interleave`` alternating slices per
    side (base first or head first in the balanced order BH, BH, HB, HB, ... over the workers);
    ``time_side(side, j, plan)`` runs one slice and returns its rounds' seconds per call. A side
    of a pair counts by its fastest round."""
    plan = block_plan(estimate, block_seconds, interleave)
    # Slow cases (a U-Net at batch 8: 5 rounds of 100 ms per block) get fewer pairs, never below 10.
    pair_seconds = 2 * interleave * (plan["rounds"] + plan["warmup"]) * plan["iterations"] * estimate
    count = max(MIN_BLOCKS, min(blocks, int(case_seconds / pair_seconds)))
    result = ABResult(name, "compared", plan={**plan, "blocks": count, "interleave": interleave}, info=info or {})
    for j in range(count):
        fastest = {"base": math.inf, "head": math.inf}
        for k in range(interleave):
            for side in ("base", "head") if (j // workers + k) % 2 == 0 else ("head", "base"):
                samples = time_side(side, j, plan)
                fastest[side] = min(fastest[side], min(samples))
                if side == "head":
                    result.head_samples.extend(samples)
        result.base.append(fastest["base"])
        result.head.append(fastest["head"])
    result.interval = paired_ratio(np.array(result.head), np.array(result.base), confidence)
    return result


def block_plan(estimate: float, block_seconds: float, interleave: int = 1) -> dict[str, int]:
    """One slice of a block: iterations per round (a round >= 0.2 ms), timed rounds (the block,
    >= ``block_seconds`` and at least 5 rounds, split into ``interleave`` slices) and warm-up
    rounds, from the head's estimate of one call."""
    estimate = max(estimate, 1e-7)
    iterations = max(1, math.ceil(MIN_ROUND_S / estimate))
    rounds = max(MIN_ROUNDS, math.ceil(block_seconds / (iterations * estimate)))
    rounds = max(1, math.ceil(rounds / interleave))
    # Warm-up after a switch of process only where it is cheap: a slice counts by its fastest
    # round, which a cold first round does not move.
    return {"iterations": iterations, "rounds": rounds, "warmup": rounds // 10}
