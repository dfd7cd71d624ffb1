"""``rps-infer bench --target HOST:PORT``: closed-loop gRPC load against a running server,
optionally side by side with a bare grpcio echo server (the transport floor) and the
same model in-process, so the report shows what the transport costs and how close
the service comes to the floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import rps_infer.defaults as defaults
from rps_infer.bench.loadgen.closed_loop import LoadSpec, run_load
from rps_infer.serving.launch import ServerProcess, echo_command


def grpc_sweep(target: str, apis: Sequence[str], model: str, batch_sizes: Sequence[int],
               concurrencies: Sequence[int], *, duration_s: float, warmup_s: float = defaults.LOAD_WARMUP_S,
               server_pids: list[int] | None = None, echo: bool = False, inprocess: bool = False,
               progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows for the service (and echo / in-process when asked), one per api x batch x concurrency."""
    rows: list[dict] = []
    echo_server = ServerProcess(echo_command("--model", f"{model}={zoo_artifact(model)}")) if echo else None
    try:
        cases = [(a, b, c) for a in apis for b in batch_sizes for c in concurrencies]
        for i, (api, batch, conc) in enumerate(cases, 1):
            if progress:
                progress(f"[{i}/{len(cases)}] {api} batch {batch} concurrency {conc}")
            spec = LoadSpec(target, api, model, batch, conc, duration_s, warmup_s)
            service = {"series": "service", **run_load(spec, server_pids).summary()}
            rows.append(service)
            if echo_server is not None:
                floor = LoadSpec(echo_server.target, api, model, batch, conc, duration_s, warmup_s)
                echoed = {"series": "echo", **run_load(floor, [echo_server.pid]).summary()}
                rows.append(echoed)
                if echoed["p50_us"]:
                    service["ratio_vs_echo"] = service["p50_us"] / echoed["p50_us"]
    finally:
        if echo_server is not None:
            echo_server.terminate()
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
