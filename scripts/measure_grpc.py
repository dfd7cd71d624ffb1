"""Measure the service against the transport floor: the gRPC numbers in benchmarks/README.md.

    python scripts/measure_grpc.py [--repetitions 3] [--duration 5]

Each repetition runs, interleaved: the service and a bare grpcio echo server on
Predict b1, BatchPredict b64 (value) and ModelInfer b64 (value, raw) at 1 client;
batching on vs off at 1 and 32 clients; one vs two workers at 32 clients. Servers and
load generator are separate processes on this machine. Prints per-repetition values
and the medians as Markdown.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
from collections import defaultdict

from rps_infer.bench.loadgen.closed_loop import LoadSpec, run_load
from rps_infer.bench.loadgen.sweep import zoo_artifact
from rps_infer.serving.launch import ServerProcess, echo_command, serve_command


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for --workers, which needs a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(server: ServerProcess, api: str, model: str, batch: int, conc: int, duration: float) -> dict:
    """One closed-loop run against ``server``."""
    return run_load(LoadSpec(server.target, api, model, batch, conc, duration), [server.pid]).summary()


def main() -> int:
    """Run the repetitions and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, list[dict]] = defaultdict(list)
    cases = [("neural", "policy", 1), ("neural", "value", 64), ("v2", "value", 64)]
    for rep in range(args.repetitions):
        print(f"repetition {rep + 1}/{args.repetitions}", file=sys.stderr, flush=True)
        echo_args = ("--model", f"value={zoo_artifact('value')}")
        with ServerProcess(serve_command()) as service, ServerProcess(echo_command(*echo_args)) as echo:
            for api, model, batch in cases:
                for name, server in (("service", service), ("echo", echo)):
                    results[f"{name} {api} {model} b{batch} c1"].append(
                        measure(server, api, model, batch, 1, args.duration))
        for label, extra in (("batching", []), ("no-batching", ["--no-batching"])):
            with ServerProcess(serve_command(*extra)) as service:
                for conc in (1, 32):
                    results[f"{label} neural policy b1 c{conc}"].append(
                        measure(service, "neural", "policy", 1, conc, args.duration))
        for workers in (1, 2):
            with ServerProcess(serve_command("--workers", str(workers), "--port", str(free_port()))) as service:
                results[f"workers{workers} neural policy b1 c32"].append(
                    measure(service, "neural", "policy", 1, 32, args.duration))
    print("| case | p50 us (each run) | median p50 us | p99 us | req/s | server CPU us/req | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for key, runs in results.items():
        p50s = [r["p50_us"] for r in runs]
        cpu = [r["server_cpu_us_per_req"] for r in runs if r["server_cpu_us_per_req"]]
        errors = sum(sum(r["errors"].values()) for r in runs)
        print(f"| {key} | {', '.join(f'{p:.0f}' for p in p50s)} | {statistics.median(p50s):.0f} | "
              f"{statistics.median(r['p99_us'] for r in runs):.0f} | "
              f"{statistics.median(r['req_per_s'] for r in runs):.0f} | "
              f"{statistics.median(cpu) if cpu else float('nan'):.0f} | {errors} |")
    print()
    for api, model, batch in cases:
        ratios = [s["p50_us"] / e["p50_us"] for s, e in zip(results[f"service {api} {model} b{batch} c1"],
                                                            results[f"echo {api} {model} b{batch} c1"], strict=True)]
        print(f"- service / echo, {api} {model} b{batch}: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}x")
    for conc in (1, 32):
        on = statistics.median(r["p50_us"] for r in results[f"batching neural policy b1 c{conc}"])
        off = statistics.median(r["p50_us"] for r in results[f"no-batching neural policy b1 c{conc}"])
        print(f"- batching on / off, Predict b1, {conc} clients: p50 {on:.0f} / {off:.0f} us = {on / off:.2f}x")
    one = statistics.median(r["req_per_s"] for r in results["workers1 neural policy b1 c32"])
    two = statistics.median(r["req_per_s"] for r in results["workers2 neural policy b1 c32"])
    print(f"- 2 workers / 1 worker at 32 clients: {two:.0f} / {one:.0f} req/s = {two / one:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
