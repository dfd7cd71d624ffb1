"""Closed-loop gRPC load from separate processes (one client in one process is GIL-bound).

Each client thread sends one request, waits for the answer, sends the next. Only
requests that start after the warm-up and finish inside the measured window count.
Server CPU time is read from /proc for the server's process tree over the same window.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

APIS = ("neural", "v2")
STARTUP_S = 1.5  # time the client processes get to start before the load begins (spawn + imports)


@dataclass(frozen=True)
class LoadSpec:
    """What to send: API, model, batch size, how many concurrent clients, for how long."""

    target: str
    api: str
    model: str
    batch: int
    concurrency: int
    duration_s: float
    warmup_s: float = 1.0

    @property
    def rpc(self) -> str:
        """Predict (neural, batch 1), BatchPredict (neural) or ModelInfer (v2, raw tensors)."""
        if self.api == "v2":
            return "ModelInfer"
        return "Predict" if self.batch == 1 else "BatchPredict"


@dataclass
class LoadResult:
    """Latencies (seconds) of the counted requests, errors by status, the window and server CPU."""

    spec: LoadSpec
    latencies: np.ndarray
    errors: dict[str, int] = field(default_factory=dict)
    window_s: float = 0.0
    server_cpu_s: float | None = None

    def summary(self) -> dict:
        """p50/p90/p99 (us), req/s, items/s, errors, server CPU per request (us)."""
        n = len(self.latencies)
        p50, p90, p99 = (np.percentile(self.latencies, [50, 90, 99]) * 1e6).tolist() if n else (0.0, 0.0, 0.0)
        rps = n / self.window_s if self.window_s else 0.0
        return {"api": self.spec.api, "rpc": self.spec.rpc, "model": self.spec.model, "batch": self.spec.batch,
                "concurrency": self.spec.concurrency, "requests": n, "p50_us": p50, "p90_us": p90, "p99_us": p99,
                "req_per_s": rps, "items_per_s": rps * self.spec.batch, "errors": dict(self.errors),
                "server_cpu_us_per_req": (self.server_cpu_s / n * 1e6) if self.server_cpu_s is not None and n
                else None}


def payload(model: str, batch: int) -> dict[str, np.ndarray]:
    """The inputs a client sends to zoo model ``model``: its input generator (realistic
    positions, test digits, uniform images) on its serving artifact's inputs."""
    import rps_infer.zoo as zoo
    from rps_infer.formats.onnxfile import io_specs
    from rps_infer.inputs import make_feeds

    entry = zoo.select(zoo.load_zoo(), [model])[0]
    return make_feeds(io_specs(entry.onnx_path)[0], batch, seed=batch, generator=entry.inputs)


def make_call(spec: LoadSpec):
    """A stub method and the request it sends, built once (payload identical for echo and service)."""
    import grpc

    from rps_infer.client import infer_request
    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc, predict_v2_pb2_grpc

    inputs = payload(spec.model, spec.batch)
    channel = grpc.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1),
                                                          ("grpc.max_receive_message_length", 1 << 26),
                                                          ("grpc.max_send_message_length", 1 << 26)])
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


def _client_process(spec: LoadSpec, threads: int, begin: float, queue) -> None:
    import threading

    import grpc

    start, end = begin + spec.warmup_s, begin + spec.warmup_s + spec.duration_s
    results: list[tuple[list[float], Counter]] = []

    def client() -> None:
        call, request, channel = make_call(spec)
        latencies: list[float] = []
        errors: Counter = Counter()
        while time.monotonic() < begin:
            time.sleep(0.001)
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            code = None
            try:
                call(request, timeout=30)
            except grpc.RpcError as exc:
                code = exc.code().name
            t1 = time.monotonic()
            if t0 >= start and t1 <= end:
                if code is None:
                    latencies.append(t1 - t0)
                else:
                    errors[code] += 1
        channel.close()
        results.append((latencies, errors))

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put(([x for lat, _ in results for x in lat], sum((e for _, e in results), Counter())))


def run_load(spec: LoadSpec, server_pids: list[int] | None = None, processes: int | None = None) -> LoadResult:
    """Run ``spec`` from ``processes`` client processes (default: one per core, at most one per client)."""
    if spec.api not in APIS:
        raise ValueError(f"api must be one of {APIS}, got {spec.api!r}")
    processes = processes or max(1, min(spec.concurrency, os.cpu_count() or 1))
    shares = [spec.concurrency // processes + (i < spec.concurrency % processes) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")  # no inherited gRPC state in the clients
    queue = ctx.Queue()
    begin = time.monotonic() + STARTUP_S
    procs = [ctx.Process(target=_client_process, args=(spec, n, begin, queue), daemon=True) for n in shares if n]
    for p in procs:
        p.start()
    window_start = begin + spec.warmup_s
    time.sleep(max(0.0, window_start - time.monotonic()))
    cpu_before = cpu_seconds(server_pids) if server_pids else None
    time.sleep(max(0.0, window_start + spec.duration_s - time.monotonic()))
    cpu_after = cpu_seconds(server_pids) if server_pids else None
    latencies: list[float] = []
    errors: Counter = Counter()
    received, deadline = 0, time.monotonic() + 120
    while received < len(procs):
        try:
            lat, err = queue.get(timeout=1.0)
        except queue_module.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"load client process failed (exit codes {[p.exitcode for p in procs]})") from None
            continue
        received += 1
        latencies.extend(lat)
        errors.update(err)
    for p in procs:
        p.join(30)
    cpu = None if cpu_before is None else cpu_after - cpu_before
    return LoadResult(spec, np.array(latencies), dict(errors), spec.duration_s, cpu)


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
