"""The load generator's open loop: requests leave on schedule, latency counts from the intended
send time, so a server that stalls shows it in the tail instead of slowing the clients down."""

from __future__ import annotations

import functools

import pytest

from rps_infer.bench.loadgen.generator import ClientPool, LoadSpec, run_load
from rps_infer.bench.loadgen.sweep import zoo_artifact
from rps_infer.serving.launch import ServerProcess, echo_command


@pytest.fixture
def prompt_clients(monkeypatch):
    """Loads that begin as soon as their client processes are ready (about 0.6 s here), not
    after the 1.5 s floor a timed run leaves them: what test_the_load_begins_when_its_clients_are_ready
    shows is safe for an open loop."""
    monkeypatch.setattr(ClientPool, "__init__", functools.partialmethod(ClientPool.__init__, startup_s=0.0))


@pytest.mark.slow
def test_open_loop_sends_at_the_rate_asked_for(built_zoo, prompt_clients):
    with ServerProcess(echo_command("--model", f"value={built_zoo['value'].onnx_path}")) as echo:
        result = run_load(LoadSpec(echo.target, "v2", "value", 1, 4, 2.0, 0.5, rate=300.0))
    summary = result.summary()
    assert summary["rate"] == 300.0 and not summary["errors"]
    assert 0.9 * 600 <= summary["requests"] <= 1.05 * 600  # 300 req/s for 2 s


@pytest.mark.slow
def test_open_loop_counts_waiting_from_the_intended_send_time(built_zoo, prompt_clients):
    """One client asked for twice what the server answers: a closed loop would just go slower
    at a steady latency; the open loop's latency grows with the queue its schedule builds."""
    with ServerProcess(echo_command("--model", f"value={built_zoo['value'].onnx_path}")) as echo:
        closed = run_load(LoadSpec(echo.target, "v2", "value", 1, 1, 1.0, 0.5)).summary()
        opened = run_load(LoadSpec(echo.target, "v2", "value", 1, 1, 1.0, 0.5, rate=2 * closed["req_per_s"]))
    assert opened.summary()["p99_us"] > 20 * closed["p99_us"], (opened.summary(), closed)


@pytest.mark.slow
def test_the_load_begins_when_its_clients_are_ready(built_zoo):
    """No time allowed for the client processes to spawn and import (``startup_s=0``, what a busy
    CI machine amounts to): the load still begins only when they are ready, so the first call of
    an open loop leaves on time instead of a second behind a schedule it never catches up with."""
    with ServerProcess(echo_command("--model", f"value={built_zoo['value'].onnx_path}")) as echo:
        spec = LoadSpec(echo.target, "v2", "value", 1, 1, 1.0, 0.0, rate=100.0)
        records = ClientPool([spec], 1, 1.0, startup_s=0.0, rate=spec.rate).records()
    ended, latency, code, _ = min(records, key=lambda r: r[0] - r[1])  # the first intended send
    assert code == "OK" and abs(ended - latency) < 1e-6, records[:3]
    assert latency < 0.25, f"the first call counted {latency * 1e3:.0f} ms from its send time"
    assert len(records) >= 90


def test_zoo_artifact_is_the_serving_file():
    assert zoo_artifact("policy").name == "policy.onnx"


def test_the_onnx_runtime_echo_runs_the_named_model_once_per_predict(built_zoo):
    """``echo --infer`` (the floor of a server that runs ONNX Runtime per request) runs a real
    session of the model ``model_type`` names, once per Predict; the plain echo none."""
    from types import SimpleNamespace

    from rps_infer.serving.echo import Answers
    from rps_infer.serving.protos import neural_pb2

    models = {"policy": str(built_zoo["policy"].onnx_path)}
    answers = Answers(models, infer=True)
    session, feeds = answers.sessions["policy"]
    assert session.run(None, feeds)[0].shape == (1, 9)
    options = session.get_session_options()  # the service's: one thread, no spinning
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    runs = []
    answers.sessions["policy"] = (SimpleNamespace(run=lambda names, given: runs.append(given)), feeds)
    answer = answers.predict(neural_pb2.PredictRequest(model_type="policy"))
    assert runs == [feeds] and answer.best_move == 0
    assert Answers(models).sessions == {}


def test_the_spinning_echo_spins_for_as_long_as_asked_and_only_in_the_sync_server():
    """``echo --spin-us`` holds each Predict for at least the time asked (a lower bound the
    spin guarantees, not a speed claim); the aio echo and a negative spin are refused."""
    import time

    from rps_infer.serving import echo
    from rps_infer.serving.protos import neural_pb2

    answers = echo.Answers(spin_us=3000)
    start = time.perf_counter()
    answers.predict(neural_pb2.PredictRequest(model_type="policy"))
    assert time.perf_counter() - start >= 0.003
    assert echo.Answers().spin_s == 0
    for argv in (["--aio", "--spin-us", "5"], ["--spin-us", "-1"]):
        with pytest.raises(SystemExit) as exited:
            echo.main(argv)
        assert exited.value.code == 2
