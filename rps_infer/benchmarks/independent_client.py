"""A minimal closed-loop gRPC client that shares no code with rps_infer's load generator: plain
grpcio, the generated stubs, ``time.perf_counter``. It is the yardstick the serving numbers
are checked against (the gated suite requires the project's load generator to agree with it).

    python -m rps_infer.benchmarks.independent_client HOST:PORT [--clients 8] [--seconds 5] [--warmup 1]
        [--rpc predict|batch64|infer1|infer64] [--server-pid PID]

Prints one JSON line: requests, req/s, p50/p90/p99 in microseconds, errors, and the server's CPU
microseconds per request (``--server-pid``, from /proc, its threads and children included).
A window that counted no call has no latency: its percentiles are null, never 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

STARTUP_S = 2.0  # time the client processes get to spawn and import before the warm-up
ROWS = {"predict": 1, "batch64": 64, "infer1": 1, "infer64": 64, "unet1": 1, "digits1": 1, "digits64": 64}
# ModelInfer cases: model -> its inputs' shapes after the batch dim (raw FP32 tensors)
INFER = {"infer1": ("policy", {"input": (81,)}), "infer64": ("value", {"input": (81,)}),
         "unet1": ("unet-ci", {"image": (6, 128, 128), "audio": (32, 4, 4)}),
         "digits1": ("digits-rf", {"input": (64,)}), "digits64": ("digits-rf", {"input": (64,)})}


def _request(rpc: str):
    import random

    from rps_infer.serving.protos import neural_pb2, predict_v2_pb2  # the generated messages only

    rng = random.Random(rpc)
    rows = [[float(rng.randint(0, 1)) for _ in range(81)] for _ in range(ROWS[rpc])]
    if rpc == "predict":
        return "/neural.NeuralService/Predict", neural_pb2.PredictRequest(features=rows[0], model_type="policy")
    if rpc == "batch64":
        return "/neural.NeuralService/BatchPredict", neural_pb2.BatchPredictRequest(
            inputs=[neural_pb2.InputFeatures(features=r) for r in rows], model_type="value")
    import struct

    model, inputs = INFER[rpc]
    request = predict_v2_pb2.ModelInferRequest(model_name=model)
    for name, dims in inputs.items():
        count = ROWS[rpc]
        for d in dims:
            count *= d
        request.inputs.add(name=name, datatype="FP32", shape=[ROWS[rpc], *dims])
        request.raw_input_contents.append(struct.pack(f"<{count}f", *(rng.random() for _ in range(count))))
    return "/inference.GRPCInferenceService/ModelInfer", request


def _client(target: str, rpc: str, start: float, end: float, out) -> None:
    import grpc

    method, request = _request(rpc)
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=lambda b: b)
        latencies, errors = [], 0
        while time.perf_counter() < start:  # warm-up, not counted
            try:
                call(request, timeout=30)
            except grpc.RpcError:
                time.sleep(0.01)
        while (t0 := time.perf_counter()) < end:
            try:
                call(request, timeout=30)
                latencies.append(time.perf_counter() - t0)
            except grpc.RpcError:
                errors += 1
    out.put((latencies, errors))


def _cpu_seconds(pid: int) -> float:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
        with open(f"/proc/{pid}/task/{task}/children") as f:
            total += sum(_cpu_seconds(int(c)) * os.sysconf("SC_CLK_TCK") for c in f.read().split())
    return total / os.sysconf("SC_CLK_TCK")


def run(target: str, rpc: str, clients: int, seconds: float, warmup: float, server_pid: int | None) -> dict:
    """One closed-loop run of ``clients`` processes; returns the summary dict."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.perf_counter() + STARTUP_S + warmup  # spawn and imports, then the warm-up
    end = start + seconds
    procs = [ctx.Process(target=_client, args=(target, rpc, start, end, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start - time.perf_counter()))
    cpu0 = _cpu_seconds(server_pid) if server_pid else None
    time.sleep(max(0.0, end - time.perf_counter()))
    cpu1 = _cpu_seconds(server_pid) if server_pid else None
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    n = len(latencies)

    def pct(q: float) -> float | None:
        return latencies[min(n - 1, int(q * n))] * 1e6 if n else None  # 0 would pass for the fastest window

    return {"rpc": rpc, "clients": clients, "requests": n, "req_per_s": n / seconds, "p50_us": pct(0.5),
            "p90_us": pct(0.9), "p99_us": pct(0.99), "errors": sum(e for _, e in results),
            "server_cpu_us_per_req": (cpu1 - cpu0) / n * 1e6 if server_pid and n else None}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("--rpc", choices=list(ROWS), default="predict")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    print(json.dumps(run(args.target, args.rpc, args.clients, args.seconds, args.warmup, args.server_pid)))
