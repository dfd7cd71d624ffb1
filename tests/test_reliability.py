"""Reliability under load and faults: a bounded soak, a worker killed with SIGKILL, model
files changing under a running server, SIGTERM in the middle of load."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from rps_infer.bench.loadgen.generator import process_tree
from rps_infer.client import NeuralClient, V2Client
from rps_infer.game import realistic_positions
from rps_infer.nets import digits

from .onnx_graphs import slow_graph
from .server_process import ServerProcess, free_ports

# 10 s (about 33k calls here) with at most 5 % memory growth: a leak as small per call as
# 20 s with 10 % caught; the growth measured +0.5 % to +0.9 % in three 10 s runs.
SOAK_S, SOAK_CLIENTS, SOAK_PROCESSES, MAX_RSS_GROWTH = 10, 32, 4, 0.05


def _zoo_models(built_zoo):
    return ("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path))


def test_bounded_soak_has_no_errors_no_stuck_calls_and_flat_memory(built_zoo, tmp_path):
    with ServerProcess(*_zoo_models(built_zoo)) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "rps_infer.cli", "soak", "--target", server.target, "--duration", str(SOAK_S),
             "--concurrency", str(SOAK_CLIENTS), "--processes", str(SOAK_PROCESSES), "--server-pid",
             str(server.pid), "--max-rss-growth", str(MAX_RSS_GROWTH), "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=300)
        assert server.proc.poll() is None
    report = json.loads((tmp_path / "soak.json").read_text())
    print("\n" + proc.stdout.strip().splitlines()[-2])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["errors"] == {} and report["stuck"] == 0 and report["requests"] > 1000
    assert report["rss_growth"] < MAX_RSS_GROWTH
    assert len(report["windows"]) >= SOAK_S


def _workers(supervisor: int) -> set[int]:
    return set(process_tree(supervisor)) - {supervisor}


def _connections(pid: int, port: int) -> int:
    """Established TCP connections on ``port`` held by process ``pid`` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}") if os.path.islink(f"/proc/{pid}/fd/{fd}") else ""
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in list(f)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


class _Load:
    """Client threads calling Predict back to back, recording (start, end, status, client)."""

    def __init__(self, target: str, clients: int) -> None:
        self.records: list[tuple[float, float, str, int]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(target, i)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, target: str, client_id: int) -> None:
        x = realistic_positions(1, 4)[0]
        with NeuralClient(target, timeout=10, wait_for_ready=True) as client:
            while not self.stop.is_set():
                t0, code = time.monotonic(), "OK"
                try:
                    client.predict_value(x)
                except grpc.RpcError as exc:
                    code = exc.code().name
                self.records.append((t0, time.monotonic(), code, client_id))

    def finish(self) -> list[tuple[float, float, str, int]]:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return self.records


def test_a_killed_worker_is_restarted_and_only_its_in_flight_calls_fail(built_zoo):
    clients, port = 4, free_ports()[0]
    with ServerProcess(*_zoo_models(built_zoo), "--workers", "2", "--port", str(port)) as server:
        before = _workers(server.pid)
        assert len(before) == 2
        load = _Load(server.target, clients)
        time.sleep(1.0)
        held = {pid: _connections(pid, port) for pid in before}
        victim = max(held, key=held.get)  # the worker serving (most of) the clients
        assert held[victim] >= 1
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while "restarted in" not in server.log():
            assert time.monotonic() - killed_at < 60, "the supervisor did not restart the worker"
            time.sleep(0.05)
        time.sleep(1.0)
        records = load.finish()
        assert server.proc.poll() is None and len(_workers(server.pid)) == 2
        restart = next(line for line in server.log().splitlines() if "restarted in" in line)
    failures = [r for r in records if r[2] != "OK"]
    print(f"\nworker SIGKILL: {restart.split(': ', 1)[-1]}; it held {held[victim]} of {clients} client "
          f"connections; {len(records)} calls, "
          f"{len(failures)} failed ({sorted({r[2] for r in failures})}) on "
          f"{len({r[3] for r in failures})} clients")
    assert {r[2] for r in failures} <= {"UNAVAILABLE"}
    # Only clients of the killed worker fail (each has its own connection). Each loses its
    # call in flight and at most one more: a call sent in the microseconds before its
    # channel has seen the connection close fails too (a gRPC client race that
    # wait_for_ready cannot cover; seen once in a fresh-clone run: the 4th failure started 2 us after
    # its client's first).
    per_client = collections.Counter(r[3] for r in failures)
    assert len(per_client) <= held[victim], per_client
    assert all(n <= 2 for n in per_client.values()), per_client
    assert all(start <= killed_at + 0.5 for start, *_ in failures)
    after = [r for r in records if r[0] > killed_at + 0.5]
    assert len(after) > 50 and all(r[2] == "OK" for r in after)


def test_model_files_deleted_or_replaced_after_loading_do_not_affect_serving(built_zoo, tmp_path):
    kept, swapped = tmp_path / "kept.onnx", tmp_path / "swapped.onnx"
    shutil.copy(built_zoo["digits-logreg"].onnx_path, kept)
    shutil.copy(built_zoo["digits-rf"].onnx_path, swapped)
    x = digits.split()[1][:16]
    with ServerProcess(*_zoo_models(built_zoo), "--model", f"kept={kept}", "--model", f"swapped={swapped}") as s, \
            V2Client(s.target) as c:
        expected = {name: c.infer(name, {"input": x}) for name in ("kept", "swapped")}
        kept.unlink()
        swapped.write_bytes(b"garbage now")
        for name in ("kept", "swapped"):
            got = c.infer(name, {"input": x})
            np.testing.assert_array_equal(got["label"], expected[name]["label"])
            np.testing.assert_array_equal(got["probabilities"], expected[name]["probabilities"])
        assert c.ready("kept") and c.ready("swapped")


def test_sigterm_under_load_loses_no_accepted_call(built_zoo, tmp_path):
    # Half a second a call here (20 MatMuls): 8 clients keep the server's 2 handler threads busy,
    # so 8 calls are in flight at the signal and the drain takes seconds (calls sent then are refused).
    slow = slow_graph(tmp_path / "slow.onnx", repeats=20)
    one = np.ones((1, 4), np.float32)
    records: list[tuple[float, str]] = []
    stop = threading.Event()

    def client(target: str) -> None:
        with V2Client(target, timeout=60) as c:
            while not stop.is_set():
                t0, code = time.monotonic(), "OK"
                try:
                    c.infer("slow", {"input": one})
                except grpc.RpcError as exc:
                    code = exc.code().name
                records.append((t0, code))

    with ServerProcess(*_zoo_models(built_zoo), "--model", f"slow={slow}", "--grace", "30",
                       "--no-batching") as server:
        threads = [threading.Thread(target=client, args=(server.target,)) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0
        stop.set()
        for t in threads:
            t.join(60)
    accepted = [code for t0, code in records if t0 < signalled - 0.05]  # surely accepted before the signal
    print(f"\nSIGTERM under load: {len(accepted)} calls accepted before the signal, "
          f"{sum(c != 'OK' for c in accepted)} lost; {len(records) - len(accepted)} after it")
    assert len(accepted) >= 8 and all(code == "OK" for code in accepted)
    assert {code for t0, code in records if t0 > signalled + 1} <= {"UNAVAILABLE"}


@pytest.mark.parametrize("args", [["--duration", "0"], ["--concurrency", "0"]])
def test_soak_refuses_nonsense_settings(args):
    proc = subprocess.run([sys.executable, "-m", "rps_infer.cli", "soak", "--target", "127.0.0.1:1", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--duration" in proc.stderr


@pytest.mark.parametrize("command", ["soak", "bench"])
@pytest.mark.parametrize(("extra", "says"), [
    ([], "no server answers a gRPC health check there"),
    (["--server-pid", "999999999"], "--server-pid 999999999: no such process"),
])
def test_a_dead_target_or_pid_is_one_line_before_any_load(command, extra, says):
    # Before: 25k req/s of UNAVAILABLE against nothing, and RSS 0 -> 0 MiB for a pid that is not there.
    (port,) = free_ports(1)
    proc = subprocess.run([sys.executable, "-m", "rps_infer.cli", command, "--target", f"127.0.0.1:{port}", *extra],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "req/s" not in proc.stdout
