"""The service against the transport floor and the naive script, measured by the independent client.

Starts, side by side, the sync and aio echoes, each also on the iomgr I/O path the service takes
(the floor: the fastest one counts), the sync echo on that path that also runs ONNX Runtime
once per Predict (``echo-ort``: the floor of any server that runs ONNX Runtime per request; not a
floor for the ratios), the naive reference server (the plain
script the game team started from) and ``rps-infer serve`` (plus any variants given with
``--variant NAME='serve args'``), then runs ``rps_infer/benchmarks/independent_client.py``
against each, in interleaved repetitions (the server order rotates). ``--pin`` puts every
server on CPU 0 and the clients on the others, so server CPU per request and latency do not
move with thread placement.

    python scripts/serving_floor.py [--repetitions 3] [--seconds 4] [--pin] [--clients 1,8,32]
        [--rpcs predict,batch64,infer1,infer64] [--json out.json]

Prints per server and case the medians over the repetitions (and their range) of p50, req/s and
server CPU per request, and each against the fastest echo.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from rps_infer.bench.loadgen.sweep import zoo_artifact
from rps_infer.benchmarks import independent_client
from rps_infer.serving.launch import (
    ECHOES,
    ServerProcess,
    echo_command,
    echo_commands,
    naive_command,
    serve_command,
)
from rps_infer.tables import render


def servers(variants: dict[str, list[str]]) -> dict[str, list[str]]:
    """Name -> command of every server measured."""
    policy, value = str(zoo_artifact("policy")), str(zoo_artifact("value"))
    extra = [f"{name}={zoo_artifact(name)}" for name in ("unet-ci", "digits-rf")]
    models = ["--model", f"policy={policy}", "--model", f"value={value}", *(a for m in extra for a in ("--model", m))]
    commands = {**echo_commands(*models),  # echo-ort: the sync echo on the service's I/O path, plus ORT
                "echo-ort": echo_command("--infer", *ECHOES["echo-sync-iomgr"], *models),
                "naive": naive_command(policy, value),
                "service": serve_command("--policy", policy, "--value", value, *models[4:])}
    for name, args in variants.items():
        if name.startswith("echo"):  # an echo variant, e.g. echo-sync4='--threads 4'
            commands[name] = echo_command(*models, *args)
        else:
            commands[name] = serve_command("--policy", policy, "--value", value, *models[4:], *args)
    return commands


def measure(commands: dict[str, list[str]], cases: list[tuple[str, int]], repetitions: int, seconds: float,
            pin: bool) -> dict[tuple[str, str, int], list[dict]]:
    """(server, rpc, clients) -> one summary per repetition."""
    results: dict[tuple[str, str, int], list[dict]] = {}
    names = list(commands)
    cpus = sorted(os.sched_getaffinity(0))
    for rep in range(repetitions):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            command = ["taskset", "-c", str(cpus[0]), *commands[name]] if pin else commands[name]
            with ServerProcess(command) as server:
                if pin:
                    os.sched_setaffinity(0, cpus[1:])
                try:
                    for rpc, clients in cases:
                        if name == "naive" and rpc not in ("predict", "batch64"):
                            continue  # the naive script speaks the NeuralService only
                        print(f"rep {rep + 1}/{repetitions} {name} {rpc} x{clients}", file=sys.stderr, flush=True)
                        summary = independent_client.run(server.target, rpc, clients, seconds, 1.0, server.pid)
                        results.setdefault((name, rpc, clients), []).append(summary)
                finally:
                    os.sched_setaffinity(0, cpus)
    return results


def counted(runs: list[dict]) -> list[dict]:
    """The repetitions that counted calls. One that counted none (its clients did not get going
    within the window, e.g. 32 client processes pinned to one core) has no latency."""
    return [r for r in runs if r["p50_us"] is not None]


def table(results: dict, names: list[str]) -> str:
    """Medians (and ranges) per server and case over the repetitions that counted calls, with
    ratios to the fastest echo; ``reps`` says how many counted."""
    rows = []
    valid = {key: counted(runs) for key, runs in results.items()}
    for (name, rpc, clients), runs in sorted(valid.items(), key=lambda kv: (kv[0][1], kv[0][2],
                                                                            names.index(kv[0][0]))):
        used = f"{len(runs)}/{len(results[name, rpc, clients])}"
        floors = [v for (e, r, c), v in valid.items()
                  if e.startswith("echo") and e != "echo-ort" and (r, c) == (rpc, clients) and v]
        if not runs or not floors:
            rows.append([name, rpc, clients, used, "-", "-", "-", "-", "-", "-",
                         sum(r["errors"] for r in results[name, rpc, clients])])
            continue
        p50 = [r["p50_us"] for r in runs]
        rps = [r["req_per_s"] for r in runs]
        cpu = [r["server_cpu_us_per_req"] or 0.0 for r in runs]
        floor = min(floors, key=lambda rr: statistics.median(r["p50_us"] for r in rr))
        floor_p50 = statistics.median(r["p50_us"] for r in floor)
        floor_cpu = statistics.median(r["server_cpu_us_per_req"] or 0.0 for r in floor)
        floor_rps = statistics.median(r["req_per_s"] for r in floor)
        rows.append([name, rpc, clients, used, f"{statistics.median(p50):.0f} ({min(p50):.0f}-{max(p50):.0f})",
                     f"{statistics.median(p50) / floor_p50:.2f}", f"{statistics.median(rps):,.0f}",
                     f"{statistics.median(rps) / floor_rps:.2f}", f"{statistics.median(cpu):.0f}",
                     f"{statistics.median(cpu) - floor_cpu:+.0f}", sum(r["errors"] for r in runs)])
    columns = ("server", "rpc", "clients", "reps", "p50 us (range)", "p50/floor", "req/s", "req/s/floor", "CPU us/req",
               "CPU - floor", "errors")
    return render(columns, rows, numeric=columns[2:])


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3, help="interleaved rounds over all servers (default 3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per case, after 1 s warm-up")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client process counts")
    parser.add_argument("--rpcs", default="predict,batch64,infer1,infer64",
                        help=f"comma-separated cases of the independent client: {', '.join(independent_client.ROWS)}")
    parser.add_argument("--pin", action="store_true",
                        help="servers on CPU 0, clients on the others (on 2 cores all client processes share "
                             "one: keep to few clients; repetitions that counted no call are left out)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ARGS",
                        help="also measure rps-infer serve with these arguments, or the echo for a NAME "
                             "starting with echo (repeatable)")
    parser.add_argument("--only", default="", help="comma-separated server names to keep")
    parser.add_argument("--json", type=Path, help="also write every repetition's summary here")
    args = parser.parse_args()
    variants = {v.split("=", 1)[0]: v.split("=", 1)[1].split() for v in args.variant}
    commands = servers(variants)
    if args.only:
        keep = set(args.only.split(",")) | set(ECHOES) | {v for v in variants if v.startswith("echo")}
        commands = {k: v for k, v in commands.items() if k in keep}
    cases = [(rpc, int(c)) for rpc in args.rpcs.split(",") for c in args.clients.split(",")]
    results = measure(commands, cases, args.repetitions, args.seconds, args.pin)
    print(table(results, list(commands)))
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]} {k[1]} {k[2]}": v for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
