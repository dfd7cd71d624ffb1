"""Which HTTP stack serves the v2 REST API: the same REST core (rps_infer.serving.rest) and the
same models behind uvicorn + Starlette (h11 or httptools parser) and behind aiohttp, measured
side by side by one independent client (http.client, keep-alive, closed loop), server pinned
to CPU 0 and client to CPU 1, interleaved rounds, medians and range.

    python scripts/http_stacks.py [--rounds 3] [--seconds 3] [--json FILE]

Prints, per stack and batch size (policy model, JSON tensors): p50 us and server CPU us per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The same single route on each stack; "served" is rps-infer's own app (every route, the token
# check, metrics) on the stack it ships with, to show what the app adds.
STACKS = ("uvicorn-h11", "uvicorn-httptools", "aiohttp", "served")


def serve(stack: str, port: int) -> None:
    """Run ``stack`` on ``port`` over the zoo's policy and value models until killed."""
    from rps_infer.serving import rest
    from rps_infer.serving.config import ServerConfig
    from rps_infer.serving.metrics import NullMetrics
    from rps_infer.serving.server import load_registry

    registry = load_registry(ServerConfig(policy=REPO / "models/build/policy.onnx",
                                          value=REPO / "models/build/value.onnx"), NullMetrics())
    if stack == "aiohttp":
        from aiohttp import web

        async def infer(request):
            reply = rest.infer(registry, request.match_info["name"], None, await request.read(),
                               request.headers.get(rest.HEADER_LENGTH))
            return web.Response(body=reply.body, status=reply.status, headers=reply.headers)

        app = web.Application()
        app.router.add_post("/v2/models/{name}/infer", infer)
        print("ready", flush=True)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
        return
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from rps_infer.serving.http import build_app

    async def endpoint(request):
        reply = rest.infer(registry, request.path_params["name"], None, await request.body(),
                           request.headers.get(rest.HEADER_LENGTH))
        return Response(reply.body, reply.status, headers=reply.headers)

    app = Starlette(routes=[Route("/v2/models/{name}/infer", endpoint, methods=["POST"])])
    print("ready", flush=True)
    uvicorn.run(build_app(registry) if stack == "served" else app, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off", http="h11" if stack == "uvicorn-h11" else "auto")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, pid: int, batch: int, seconds: float) -> dict:
    """Closed-loop POSTs of a ``batch``-row policy request for ``seconds`` after a 1 s warm-up."""
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [batch, 81],
                                   "data": [float(i % 2) for i in range(batch * 81)]}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}

    def post() -> None:
        conn.request("POST", "/v2/models/policy/infer", body, headers)
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 200, reply.status

    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        post()
    latencies, cpu0 = [], _cpu_s(pid)
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        post()
        latencies.append(time.perf_counter() - t0)
    cpu = _cpu_s(pid) - cpu0
    conn.close()
    return {"p50_us": statistics.median(latencies) * 1e6, "cpu_us": cpu / len(latencies) * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    servers = {}
    try:
        for stack in STACKS:
            port = _free_port()
            pin = ["taskset", "-c", str(cpus[0])] if len(cpus) > 1 else []
            proc = subprocess.Popen([*pin, sys.executable, __file__, "--serve", stack, "--port", str(port)],
                                    stdout=subprocess.PIPE, text=True)
            proc.stdout.readline()
            servers[stack] = (proc, port)
        time.sleep(2.0)  # the servers bind after their 'ready' line
        if len(cpus) > 1:
            os.sched_setaffinity(0, cpus[1:])
        results = {(s, b): [] for s in STACKS for b in (1, 64)}
        for r in range(args.rounds):
            for stack in STACKS if r % 2 == 0 else STACKS[::-1]:
                for batch in (1, 64):
                    results[stack, batch].append(measure(servers[stack][1], servers[stack][0].pid, batch,
                                                         args.seconds))
    finally:
        for proc, _ in servers.values():
            proc.kill()
            proc.wait()
    table = {}
    for (stack, batch), runs in results.items():
        p50 = [r["p50_us"] for r in runs]
        cpu = [r["cpu_us"] for r in runs]
        table[f"{stack} b{batch}"] = {"p50_us": statistics.median(p50), "p50_range": [min(p50), max(p50)],
                                      "cpu_us": statistics.median(cpu), "cpu_range": [min(cpu), max(cpu)]}
        print(f"{stack:18s} b{batch:<3d} p50 {statistics.median(p50):7.0f} us ({min(p50):.0f}-{max(p50):.0f})  "
              f"server CPU {statistics.median(cpu):7.0f} us/request ({min(cpu):.0f}-{max(cpu):.0f})")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
