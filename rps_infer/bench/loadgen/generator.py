"""THE gRPC load generator, run from separate processes (one client in one process is GIL-bound);
what ``rps-infer bench --target``, the soak and the gated suite's load use.

Each client thread cycles through its calls and records every call (when it ended, how long
it took, its status). Closed loop (the default): it sends a request, waits for the answer,
sends the next. Open loop (``rate``, requests per second over all clients): each client
sends on a fixed schedule, and a call's latency counts from its *intended* send time, so a
server that stalls cannot hide its stall by slowing the clients down (coordinated omission).
:func:`run_load` counts the calls that start after the warm-up and end inside the measured
window, and reads the server's CPU time from /proc over the same window.

A target naming several replicas (``HOST:PORT,HOST:PORT``, ``dns:///NAME:PORT``; see
:mod:`rps_infer.client`) gets the clients' round-robin channel with retries, and each call
records which replica answered (it asks with ``rps-replica`` request metadata; the server
answers with its name in the trailing metadata).
A single ``HOST:PORT`` keeps the plain channel and the plain call: reading the trailing
metadata costs a little, and the gated benchmarks measure exactly what they measured before.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import rps_infer.defaults as defaults

APIS = ("neural", "v2")
STARTUP_S = 1.5  # the load begins no sooner: client processes spawn, import and build their calls
READY_TIMEOUT_S = 120.0  # a client process not ready by then is stuck
GO_AHEAD_S = 0.05  # between "all ready" and the load's start: time for every client to hear it
CALL_TIMEOUT_S = 30.0
# One call of a client: (ended at, seconds since the load began; latency in seconds; status name;
# the replica that answered, "" when not read: a single target, or no server answered)
Record = tuple[float, float, str, str]


@dataclass(frozen=True)
class LoadSpec:
    """What to send: API, model, batch size, how many concurrent clients, for how long."""

    target: str
    api: str
    model: str
    batch: int
    concurrency: int
    duration_s: float
    warmup_s: float = defaults.LOAD_WARMUP_S
    rate: float | None = None  # requests/s over all clients: open loop; None: closed loop
    retries: bool = True  # replicas: retry the calls one drops (False: see what a failover loses)

    @property
    def rpc(self) -> str:
        """Predict (neural, batch 1), BatchPredict (neural) or ModelInfer (v2, raw tensors)."""
        if self.api == "v2":
            return "ModelInfer"
        return "Predict" if self.batch == 1 else "BatchPredict"


@dataclass
class LoadResult:
    """Latencies (seconds) of the counted requests, errors by status, the window and server CPU;
    ``records``: the counted calls, their times from ``began`` (``time.monotonic``, when the
    load began: relates them to events outside, e.g. a replica killed mid-load)."""

    spec: LoadSpec
    latencies: np.ndarray
    errors: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    server_cpu_s: float | None = None
    records: list[Record] = field(default_factory=list)
    began: float = 0.0

    @property
    def per_replica(self) -> dict[str, int]:
        """Answered (OK) counted calls by the replica that answered; empty for a single target."""
        return dict(Counter(r[3] for r in self.records if r[2] == "OK" and r[3]))

    def summary(self) -> dict:
        """p50/p90/p99 (us), req/s, items/s, errors, server CPU per request (us), calls by replica."""
        n = len(self.latencies)
        p50, p90, p99 = (np.percentile(self.latencies, [50, 90, 99]) * 1e6).tolist() if n else (0.0, 0.0, 0.0)
        rps = n / self.window_s if self.window_s else 0.0
        return {"api": self.spec.api, "rpc": self.spec.rpc, "model": self.spec.model, "batch": self.spec.batch,
                "concurrency": self.spec.concurrency, "rate": self.spec.rate, "requests": n,
                "p50_us": p50, "p90_us": p90, "p99_us": p99,
                "req_per_s": rps, "items_per_s": rps * self.spec.batch, "errors": dict(self.errors),
                "server_cpu_us_per_req": (self.server_cpu_s / n * 1e6) if self.server_cpu_s is not None and n
                else None, "per_replica": self.per_replica}


def payload(model: str, batch: int) -> dict[str, np.ndarray]:
    """The inputs a client sends to zoo model ``model``: its input generator (realistic
    positions, test digits, uniform images) on its serving artifact's inputs."""
    import rps_infer.zoo as zoo

    return entry_payload(zoo.select(zoo.load_zoo(), [model])[0], batch)


def entry_payload(entry, batch: int) -> dict[str, np.ndarray]:
    """:func:`payload` for a zoo entry already at hand (e.g. built into another folder)."""
    from rps_infer.formats.onnxfile import io_specs
    from rps_infer.inputs import make_feeds

    return make_feeds(io_specs(entry.onnx_path)[0], batch, seed=batch, generator=entry.inputs)


def make_channel(spec: LoadSpec):
    """The clients' channel (round robin, retries) for replicas, a plain one for a single target."""
    import grpc

    from rps_infer.client import open_channel, replicated

    if replicated(spec.target):
        return open_channel(spec.target, 64, retries=spec.retries)
    return grpc.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1),
                                                       ("grpc.max_receive_message_length", 1 << 26),
                                                       ("grpc.max_send_message_length", 1 << 26)])


def make_call(spec: LoadSpec):
    """A stub method and the request it sends, built once (payload identical for echo and service)."""
    from rps_infer.client import infer_request
    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc, predict_v2_pb2_grpc

    inputs = payload(spec.model, spec.batch)
    channel = make_channel(spec)
    if spec.api == "v2":
        stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        return stub.ModelInfer, infer_request(spec.model, inputs, raw=True), channel
    x = inputs["input"]
    stub = neural_pb2_grpc.NeuralServiceStub(channel)
    if spec.batch == 1:
        return stub.Predict, neural_pb2.PredictRequest(features=x[0].tolist(), model_type=spec.model), channel
    request = neural_pb2.BatchPredictRequest(inputs=[neural_pb2.InputFeatures(features=r) for r in x.tolist()],
                                             model_type=spec.model)
    return stub.BatchPredict, request, channel


def client_loop(calls: Sequence[tuple], begin: float, end: float, offset: int = 0,
                timeout: float = CALL_TIMEOUT_S, interval: float | None = None, phase: float = 0.0) -> list[Record]:
    """One client: from ``begin`` to ``end`` (``time.monotonic``), make ``calls`` (from
    :func:`client_calls`) in turn, starting at ``offset``: each as soon as the previous one
    answered, or (``interval`` seconds apart, shifted by ``phase`` of an interval) on a schedule,
    latency counted from the intended send time."""
    import grpc

    from rps_infer.serving.status import ASK_REPLICA, REPLICA_KEY

    records: list[tuple[float, float, str]] = []
    answered: list[str] = []  # apart: the records line is the one tests/planted.py plants a miscount into
    i = offset
    while time.monotonic() < begin:
        time.sleep(0.001)
    k = 0
    while True:
        t0 = time.monotonic() if interval is None else begin + (k + phase) * interval
        if t0 >= end:
            break
        if interval is not None and (wait := t0 - time.monotonic()) > 0:
            time.sleep(wait)
        call, request, _, read_replica = calls[i % len(calls)]
        i, k = i + 1, k + 1
        code, replica = "OK", ""
        try:
            if read_replica:
                replica = answered_by(call.with_call(request, timeout=timeout, metadata=ASK_REPLICA)[1], REPLICA_KEY)
            else:
                call(request, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code().name
            replica = answered_by(exc, REPLICA_KEY) if read_replica else ""
        t1 = time.monotonic()
        records.append((t1 - begin, t1 - t0, code))
        answered.append(replica)
    for _, _, channel, _ in calls:
        channel.close()
    return [(*record, replica) for record, replica in zip(records, answered, strict=True)]


def client_calls(specs: Sequence[LoadSpec]) -> list[tuple]:
    """One client's calls: (stub method, request, channel, whether to read the answering
    replica) per spec, on a channel of its own."""
    from rps_infer.client import replicated

    return [(*make_call(spec), replicated(spec.target)) for spec in specs]


def answered_by(call, key: str) -> str:
    """Trailing metadata ``key`` (the server's ``rps-replica``) of a finished call or RpcError
    ("" without it: no server answered, or a server that does not name itself)."""
    return next((v for k, v in call.trailing_metadata() or () if k == key), "")


def _client_process(specs: Sequence[LoadSpec], threads: int, seconds: float, timeout: float, ready, go,
                    results, interval: float | None = None, first: int = 0, total: int = 1) -> None:
    """``threads`` clients in one process (clients ``first``... of ``total``): builds their calls,
    says so on ``ready``, takes the time the load begins from ``go``, then runs them for
    ``seconds`` and puts all their records on ``results``."""
    calls = [client_calls(specs) for _ in range(threads)]
    ready.put(os.getpid())
    begin = go.get(timeout=READY_TIMEOUT_S)
    collected: list[Record] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        mine = client_loop(calls[offset], begin, begin + seconds, offset, timeout, interval, (first + offset) / total)
        with lock:
            collected.extend(mine)

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put(collected)


class ClientPool:
    """``concurrency`` client threads spread over ``processes`` spawned processes (default one
    per core), running ``specs`` for ``seconds`` from ``begin``: ``startup_s`` from now, or when
    the last client is ready if that is later. Returns once the time is fixed.

    The load waits for its clients because a late one is not merely a smaller sample: an open-loop
    client that starts behind its schedule spends the whole window catching up, and on a busy
    machine (spawn and imports took over 2 s in CI) counted not a single call."""

    def __init__(self, specs: Sequence[LoadSpec], concurrency: int, seconds: float, processes: int | None = None,
                 timeout: float = CALL_TIMEOUT_S, startup_s: float = STARTUP_S, rate: float | None = None) -> None:
        processes = processes or max(1, min(concurrency, os.cpu_count() or 1))
        shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
        interval = concurrency / rate if rate else None  # each client's share of the rate
        ctx = multiprocessing.get_context("spawn")  # no inherited gRPC state in the clients
        earliest = time.monotonic() + startup_s
        self.results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Queue()
        self.timeout = timeout
        firsts = [sum(shares[:i]) for i in range(len(shares))]
        self.procs = [ctx.Process(target=_client_process, args=(list(specs), n, seconds, timeout, ready, go,
                                                                self.results, interval, first, concurrency),
                                  daemon=True) for n, first in zip(shares, firsts, strict=True) if n]
        for p in self.procs:
            p.start()
        self._gather(ready, time.monotonic() + READY_TIMEOUT_S)
        self.begin = max(earliest, time.monotonic() + GO_AHEAD_S)
        self.end = self.begin + seconds
        for _ in self.procs:
            go.put(self.begin)

    def records(self) -> list[Record]:
        """Every client's records, once all have finished (a dead client process is an error)."""
        collected: list[Record] = []
        for records in self._gather(self.results, self.end + self.timeout + 90):
            collected.extend(records)
        for p in self.procs:
            p.join(30)
        return collected

    def _gather(self, from_queue, deadline: float) -> list:
        """One item from each client process off ``from_queue``; a process that died or a
        ``deadline`` (``time.monotonic``) passed first is an error."""
        items: list = []
        while len(items) < len(self.procs):
            try:
                items.append(from_queue.get(timeout=1.0))
            except queue_module.Empty:
                dead = [p for p in self.procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    codes = [p.exitcode for p in self.procs]
                    for p in self.procs:  # none left behind, waiting for a go or a queue
                        p.kill()
                    raise RuntimeError(f"load client process failed (exit codes {codes})") from None
        return items


def run_load(spec: LoadSpec, server_pids: list[int] | None = None, processes: int | None = None) -> LoadResult:
    """Run ``spec`` from ``processes`` client processes (default: one per core, at most one per client)."""
    if spec.api not in APIS:
        raise ValueError(f"api must be one of {APIS}, got {spec.api!r}")
    pool = ClientPool([spec], spec.concurrency, spec.warmup_s + spec.duration_s, processes, rate=spec.rate)
    window_start = pool.begin + spec.warmup_s
    time.sleep(max(0.0, window_start - time.monotonic()))
    cpu_before = cpu_seconds(server_pids) if server_pids else None
    time.sleep(max(0.0, pool.end - time.monotonic()))
    cpu_after = cpu_seconds(server_pids) if server_pids else None
    counted = [r for r in pool.records() if r[0] - r[1] >= spec.warmup_s and r[0] <= spec.warmup_s + spec.duration_s]
    latencies = np.array([r[1] for r in counted if r[2] == "OK"])
    errors = Counter(r[2] for r in counted if r[2] != "OK")
    cpu = None if cpu_before is None else cpu_after - cpu_before
    return LoadResult(spec, latencies, dict(errors), spec.duration_s, cpu, counted, pool.begin)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` and their descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            except (OSError, IndexError, ValueError):
                continue
    return total / tick
