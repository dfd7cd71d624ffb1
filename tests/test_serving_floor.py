"""``scripts/serving_floor.py``'s table: a repetition that counted no call is left out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serving_floor.py"


def _script():
    spec = importlib.util.spec_from_file_location("serving_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(p50_us: float, requests: int = 1000) -> dict:
    return {"rpc": "predict", "clients": 32, "requests": requests, "req_per_s": requests / 3.0,
            "p50_us": p50_us if requests else None, "errors": 0,
            "server_cpu_us_per_req": 300.0 if requests else None}


def test_a_repetition_that_counted_no_call_is_left_out_of_the_medians_and_ranges():
    """32 clients pinned to one core can count nothing in a window. Its p50, then 0, once entered
    the range as the fastest run ("0-12163") and pulled the median down; it is now None and left out."""
    floor = _script()
    results = {("echo-sync", "predict", 32): [_run(400), _run(0, requests=0), _run(420)],
               ("service", "predict", 32): [_run(0, requests=0), _run(0, requests=0), _run(0, requests=0)]}
    text = floor.table(results, ["echo-sync", "service"])
    echo_row = next(line for line in text.splitlines() if line.startswith("echo-sync"))
    assert "2/3" in echo_row and "410 (400-420)" in echo_row and "(0-" not in echo_row
    service_row = next(line for line in text.splitlines() if line.startswith("service"))
    assert "0/3" in service_row and service_row.split()[4] == "-"


def test_the_independent_client_gives_no_latency_for_a_window_that_counted_no_call():
    """Against a port nobody listens on every call fails: no latency at all, not a p50 of 0."""
    import socket

    from rps_infer.benchmarks import independent_client

    with socket.socket() as probe:  # a free port, closed again before the client dials it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    summary = independent_client.run(f"127.0.0.1:{port}", "predict", 1, 0.3, 0.1, None)
    assert summary["requests"] == 0 and summary["errors"] > 0
    assert summary["p50_us"] is None and summary["p99_us"] is None
