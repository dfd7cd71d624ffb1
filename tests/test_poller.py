"""gRPC core's I/O path: chosen before grpc is imported, and really taken by the server process."""

import os
import subprocess
import sys

import grpc
import pytest

from rps_infer.serving import poller
from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc

from .server_process import ServerProcess, free_ports

CALLS = 3000


def _in_fresh_interpreter(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"} | env
    return subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_choice_before_import_sets_the_environment_and_stays():
    out = _in_fresh_interpreter(
        "import os; from rps_infer.serving import poller\n"
        "print(poller.choose('iomgr')); print(os.environ.get('GRPC_EXPERIMENTS'))\n"
        "print(poller.choose('event-engine'))")
    first, env, again = out.splitlines()
    assert "iomgr" in first and env == poller.IOMGR_EXPERIMENTS and again == first


def test_event_engine_clears_an_inherited_iomgr_choice():
    out = _in_fresh_interpreter("import os; from rps_infer.serving import poller\n"
                                "print(poller.choose('event-engine')); print('GRPC_EXPERIMENTS' in os.environ)",
                                GRPC_EXPERIMENTS=poller.IOMGR_EXPERIMENTS)
    assert out.splitlines() == ["gRPC I/O: event-engine (grpcio's default)", "False"]


def test_too_late_or_overridden_choices_say_so(monkeypatch):
    monkeypatch.setattr(poller, "_chosen", None)
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    assert "grpc was imported before" in poller.choose("iomgr")  # this test process imported grpc
    assert "GRPC_EXPERIMENTS" not in os.environ
    monkeypatch.setenv("GRPC_EXPERIMENTS", "-some_experiment")
    assert "GRPC_EXPERIMENTS=-some_experiment says" in poller.choose("iomgr")
    with pytest.raises(ValueError, match="one of iomgr, event-engine, got 'epoll'"):
        poller.choose("epoll")


def _event_engine_ticks(pid: int) -> int:
    """CPU clock ticks the process's ``event_engine`` threads have used so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm, open(f"/proc/{pid}/task/{tid}/stat") as stat:
                if comm.read().strip() == "event_engine":
                    fields = stat.read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime + stime
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return total


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread CPU needs Linux /proc")
@pytest.mark.parametrize("choice", ["default", "event-engine"])
def test_the_server_process_takes_the_chosen_path(built_zoo, choice):
    """With iomgr (serve's default) the EventEngine threads stay idle through thousands of calls;
    with grpcio's default they carry every call (~60 us each here): the control that shows this
    check fails if the switch stops working (e.g. a grpcio that drops the iomgr path)."""
    args = [] if choice == "default" else ["--grpc-poller", choice]
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), *args) as server:
        request = neural_pb2.PredictRequest(features=[0.0] * 81, model_type="policy")
        with grpc.insecure_channel(server.target) as channel:
            predict = neural_pb2_grpc.NeuralServiceStub(channel).Predict
            predict(request, timeout=10)
            before = _event_engine_ticks(server.pid)
            for _ in range(CALLS):
                predict(request, timeout=10)
            ticks = _event_engine_ticks(server.pid) - before
        log = server.log()
    if choice == "default":
        assert "gRPC I/O: iomgr" in log
        assert ticks <= 2, f"event_engine threads used {ticks} ticks over {CALLS} calls on the iomgr path"
    else:
        assert "gRPC I/O: event-engine" in log
        assert ticks >= 5, f"event_engine threads used only {ticks} ticks over {CALLS} calls on their own path"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread CPU needs Linux /proc")
def test_forked_workers_take_the_path_too(built_zoo):
    """``--workers 2``: the supervisor chooses before it imports grpc and forks; each worker's
    event_engine threads stay idle (seen: 0-2 ticks each over 3200 calls, 14-16 on event-engine)."""
    (port,) = free_ports()
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--workers", "2", "--port", str(port)) as server:
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as children:
            workers = [int(pid) for pid in children.read().split()]
        before = {pid: _event_engine_ticks(pid) for pid in workers}
        request = neural_pb2.PredictRequest(features=[0.0] * 81, model_type="policy")
        for _ in range(4):  # a channel each, not shared: SO_REUSEPORT spreads them over the workers
            with grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                predict = neural_pb2_grpc.NeuralServiceStub(channel).Predict
                for _ in range(CALLS // 4):
                    predict(request, timeout=10)
        ticks = {pid: _event_engine_ticks(pid) - before[pid] for pid in workers}
    assert len(workers) == 2 and sum(ticks.values()) <= 4, f"event_engine ticks per worker: {ticks}"
