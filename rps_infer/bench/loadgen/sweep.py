"""``rps-infer bench --target HOST:PORT``: gRPC load against a running server, optionally side by
side with the bare grpcio echoes (the transport floor: the fastest of them),
the naive reference server (the plain script the service replaces) and the same model
in-process, so the report shows what the transport costs and how close the service comes to
the floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import rps_infer.defaults as defaults
from rps_infer.bench.loadgen.generator import LoadSpec, run_load
from rps_infer.serving.launch import ServerProcess, echo_commands, naive_command


def yardsticks(model: str, echo: bool, naive: bool) -> dict[str, list[str]]:
    """Commands of the servers measured beside the service: the echoes of
    :data:`~rps_infer.serving.launch.ECHOES` (the floor is the fastest of them) and the naive
    reference server (the NeuralService models policy and value)."""
    commands = {}
    if echo:
        commands |= echo_commands("--model", f"{model}={zoo_artifact(model)}")
    if naive:
        commands["naive"] = naive_command(zoo_artifact("policy"), zoo_artifact("value"))
    return commands


def grpc_sweep(target: str, apis: Sequence[str], model: str, batch_sizes: Sequence[int],
               concurrencies: Sequence[int], *, duration_s: float, warmup_s: float = defaults.LOAD_WARMUP_S,
               server_pids: list[int] | None = None, echo: bool = False, naive: bool = False,
               inprocess: bool = False, rate: float | None = None,
               progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows for the service (and the echoes, the naive server, in-process, when asked), one per
    server x api x batch x concurrency; each service row carries its ratio to the fastest echo."""
    rows: list[dict] = []
    servers = {name: ServerProcess(command) for name, command in yardsticks(model, echo, naive).items()}
    try:
        cases = [(a, b, c) for a in apis for b in batch_sizes for c in concurrencies]
        for i, (api, batch, conc) in enumerate(cases, 1):
            if progress:
                progress(f"[{i}/{len(cases)}] {api} batch {batch} concurrency {conc}")
            spec = LoadSpec(target, api, model, batch, conc, duration_s, warmup_s, rate)
            service = {"series": "service", **run_load(spec, server_pids).summary()}
            rows.append(service)
            others = [{"series": name, **run_load(replace(spec, target=server.target), [server.pid]).summary()}
                      for name, server in servers.items() if name != "naive" or api == "neural"]
            rows += others
            floors = [r["p50_us"] for r in others if r["series"].startswith("echo") and r["p50_us"]]
            if floors:
                service["ratio_vs_echo"] = service["p50_us"] / min(floors)
    finally:
        for server in servers.values():
            server.terminate()
    if inprocess:
        rows.extend(_inprocess_rows(model, batch_sizes))
    for r in rows:
        r["us_per_item"] = r["p50_us"] / r["batch"] if r.get("p50_us") else None
    return rows


def zoo_artifact(model: str):
    """The zoo's serving artifact of ``model`` (built if needed): what the echo answers like."""
    import rps_infer.zoo as zoo

    entry = zoo.select(zoo.load_zoo(), [model])[0]
    zoo.build([entry])
    return entry.onnx_path


def _inprocess_rows(model: str, batch_sizes: Sequence[int]) -> list[dict]:
    import rps_infer.zoo as zoo
    from rps_infer.bench.sweep import sweep

    entry = zoo.select(zoo.load_zoo(), [model])[0]
    zoo.build([entry])
    result = sweep(entry, ["onnxrt-cpu"], batch_sizes, budget_s=0.3)
    return [{"series": "inprocess", "api": "-", "rpc": "infer", "model": model, "batch": r.batch,
             "concurrency": 1, "p50_us": r.p50_us, "p90_us": r.p90_us, "p99_us": r.p99_us,
             "req_per_s": 1e6 / r.p50_us, "items_per_s": r.items_per_s, "errors": {},
             "server_cpu_us_per_req": None} for r in result.rows]
