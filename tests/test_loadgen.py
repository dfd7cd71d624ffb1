"""The load generator's open loop: requests leave on schedule, latency counts from the intended
send time, so a server that stalls shows it in the tail instead of slowing the clients down."""

from __future__ import annotations

import pytest

from rps_infer.bench.loadgen.generator import LoadSpec, run_load
from rps_infer.bench.loadgen.sweep import zoo_artifact
from rps_infer.serving.launch import ServerProcess, echo_command


@pytest.mark.slow
def test_open_loop_sends_at_the_rate_asked_for(built_zoo):
    with ServerProcess(echo_command("--model", f"value={built_zoo['value'].onnx_path}")) as echo:
        result = run_load(LoadSpec(echo.target, "v2", "value", 1, 4, 2.0, 0.5, rate=300.0))
    summary = result.summary()
    assert summary["rate"] == 300.0 and not summary["errors"]
    assert 0.9 * 600 <= summary["requests"] <= 1.05 * 600  # 300 req/s for 2 s


@pytest.mark.slow
def test_open_loop_counts_waiting_from_the_intended_send_time(built_zoo):
    """One client asked for twice what the server answers: a closed loop would just go slower
    at a steady latency; the open loop's latency grows with the queue its schedule builds."""
    with ServerProcess(echo_command("--model", f"value={built_zoo['value'].onnx_path}")) as echo:
        closed = run_load(LoadSpec(echo.target, "v2", "value", 1, 1, 1.0, 0.5)).summary()
        opened = run_load(LoadSpec(echo.target, "v2", "value", 1, 1, 1.0, 0.5, rate=2 * closed["req_per_s"]))
    assert opened.summary()["p99_us"] > 20 * closed["p99_us"], (opened.summary(), closed)


def test_zoo_artifact_is_the_serving_file():
    assert zoo_artifact("policy").name == "policy.onnx"
