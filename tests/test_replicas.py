"""Replicas that lose nothing: three `rps-infer serve` processes behind one comma-list target,
one SIGKILLed and one SIGTERMed in the middle of load. The clients' round-robin channel with
retries answers every call, correctly; without retries the same faults lose calls."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest

from rps_infer.bench.loadgen.generator import ClientPool, LoadSpec, run_load
from rps_infer.bench.report import grpc_table_lines
from rps_infer.cli import args as common
from rps_infer.client import (
    IDEMPOTENT_SERVICES,
    NeuralClient,
    V2Client,
    grpc_target,
    replicated,
    service_config,
)
from rps_infer.compare import compare
from rps_infer.errors import RpsInferError
from rps_infer.game import realistic_positions
from rps_infer.serving.protos import neural_pb2, predict_v2_pb2

from .server_process import ServerProcess

CLIENTS, WARMUP_S, LOAD_S = 4, 0.5, 5.5
KILL_AT, TERM_AT = 1.5, 3.5  # seconds after the load is seen running (LOAD_S leaves 2.5 s after the SIGTERM)
CHECKER_THREADS = 16
SETTLE_S = 0.5  # after a fault, calls still ending on the old replica are the ones it had in flight


def _models(built_zoo) -> tuple[str, ...]:
    return ("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
            "--grace", "2")


def _name(server) -> str:
    """How a replica names itself in the ``rps-replica`` trailing metadata."""
    return f"{server.target} pid {server.pid}"


class _Checker:
    """Clients of the same target beside the load, ``threads`` threads sharing one NeuralClient
    and one V2Client (a game server's pattern: many calls in flight on one channel): every
    Predict (policy) and ModelInfer (value) answer is compared with onnxruntime in this
    process on the same positions."""

    def __init__(self, built_zoo, target: str, threads: int = CHECKER_THREADS) -> None:
        self.x = realistic_positions(32, seed=7)
        self.want = {name: built_zoo[name].backend("onnxrt-cpu").infer({"input": self.x})["output"]
                     for name in ("policy", "value")}
        self.tolerance = built_zoo["policy"].tolerance
        self.target, self.calls, self.mismatches, self.errors = target, 0, [], Counter()
        self.retries: int | None = None
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.neural, self.v2 = NeuralClient(target), V2Client(target)
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, first: int) -> None:
        i = first
        while not self.stop.is_set():
            i = (i + 1) % len(self.x)
            try:
                got = {"policy": self.neural.predict_policy(self.x[i])[0][None],
                       "value": self.v2.infer("value", {"input": self.x[i:i + 1]})["output"]}
            except grpc.RpcError as exc:
                with self.lock:
                    self.errors[exc.code().name] += 1
                continue
            wrong = [(name, i) for name, array in got.items()
                     if not compare({"output": self.want[name][i:i + 1]}, {"output": array}, self.tolerance)]
            with self.lock:
                self.calls += 2
                self.mismatches += wrong

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.retries = _retries(grpc_target(self.target))
        self.neural.close()
        self.v2.close()


def _retries(target: str) -> int | None:
    """Attempts beyond the first of this process's channels to ``target``: channelz counts calls
    per channel and attempts per subchannel (grpcio's internal channelz API; None without it)."""
    try:
        from grpc._cython import cygrpc

        channels = json.loads(cygrpc.channelz_get_top_channels(0)).get("channel", [])
        total = 0
        for channel in (c for c in channels if c["data"].get("target") == target):
            total -= int(channel["data"].get("callsStarted", 0))
            for ref in channel.get("subchannelRef", []):
                sub = json.loads(cygrpc.channelz_get_subchannel(int(ref["subchannelId"])))["subchannel"]
                total += int(sub["data"].get("callsStarted", 0))
        return total
    except (ImportError, AttributeError, KeyError, ValueError):
        return None


def _connections_to(port: int) -> int:
    """Established TCP connections from this host to ``port`` (Linux /proc; gRPC's sockets are
    IPv6 ones with v4-mapped addresses, listed in tcp6)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            rows = [line.split() for line in list(f)[1:]]
        count += sum(1 for row in rows if int(row[2].rsplit(":", 1)[1], 16) == port and row[3] == "01")
    return count


def _inject_faults(servers, expected: int, earliest: float, faults: dict[str, float], done) -> None:
    """SIGKILL ``servers[0]`` KILL_AT and SIGTERM ``servers[1]`` TERM_AT seconds after the load
    is seen running: ``expected`` connections to the first replica (a load client connects at
    its first call; clients that spawn late on a busy machine would otherwise meet the faults
    before they had sent anything) and not before ``earliest`` (the end of the warm-up)."""
    port = int(servers[0].target.rsplit(":", 1)[1])
    while _connections_to(port) < expected:
        if done.wait(0.01):
            return
    running = max(time.monotonic(), earliest)
    for kind, at, server in (("kill", KILL_AT, servers[0]), ("term", TERM_AT, servers[1])):
        if done.wait(max(0.0, running + at - time.monotonic())):
            return
        faults[kind] = time.monotonic()
        server.proc.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)


def _fail_over(built_zoo, retries: bool, checker: bool):
    """Load three replicas; SIGKILL one and SIGTERM another while it runs. Returns the load
    result, the replicas' names, the faults' times (seconds since the load began), the
    SIGTERMed replica's exit code and the checker."""
    with contextlib.ExitStack() as stack:
        # The load begins as soon as its client processes are ready (the faults wait for their
        # connections), not after the floor a timed run leaves them to spawn.
        prompt = stack.enter_context(pytest.MonkeyPatch.context())
        prompt.setattr(ClientPool, "__init__", functools.partialmethod(ClientPool.__init__, startup_s=0.0))
        servers = [stack.enter_context(ServerProcess(*_models(built_zoo))) for _ in range(3)]
        target = ",".join(s.target for s in servers)
        check = _Checker(built_zoo, target) if checker else None
        faults: dict[str, float] = {}
        done = threading.Event()
        earliest = time.monotonic() + WARMUP_S  # the load begins no sooner
        expected = CLIENTS + (2 if checker else 0)  # the checker's two clients hold one connection each
        injector = threading.Thread(target=_inject_faults, args=(servers, expected, earliest, faults, done))
        injector.start()
        try:
            result = run_load(LoadSpec(target, "neural", "policy", 1, CLIENTS, LOAD_S, WARMUP_S, retries=retries))
        finally:
            done.set()
            injector.join()
            if check:
                check.finish()
        assert set(faults) == {"kill", "term"}, f"the load ended before both faults: {faults}"
        exit_code = servers[1].proc.wait(30)
        names = [_name(s) for s in servers]
    return result, names, {k: v - result.began for k, v in faults.items()}, exit_code, check


def _answered(result, lo: float, hi: float) -> Counter:
    return Counter(r[3] for r in result.records if lo <= r[0] < hi and r[2] == "OK")


@pytest.mark.slow
def test_killed_and_stopped_replicas_lose_no_call_and_the_survivors_take_the_load(built_zoo):
    result, names, faults, exit_code, check = _fail_over(built_zoo, retries=True, checker=True)
    stopped, survivor = names[1:]  # names[0] was SIGKILLed
    before = _answered(result, 0, faults["kill"])
    between = _answered(result, faults["kill"] + SETTLE_S, faults["term"])
    after = _answered(result, faults["term"] + SETTLE_S, np.inf)
    summary = result.summary()
    print(f"\nreplicas: {summary['requests']} calls in {LOAD_S:g} s, errors {summary['errors']}; answered "
          f"before the SIGKILL {dict(before)}, between it and the SIGTERM {dict(between)}, after {dict(after)}; "
          f"checker {check.calls} calls, {len(check.mismatches)} wrong, errors {dict(check.errors)}, "
          f"retries {check.retries}")
    assert result.errors == {} and summary["requests"] > 500
    assert set(summary["per_replica"]) == set(names)
    assert set(before) == set(names) and min(before.values()) > 0.2 * sum(before.values())  # round robin
    assert set(between) == {stopped, survivor} and min(between.values()) > 0.2 * sum(between.values())
    assert set(after) == {survivor} and after[survivor] > 100
    assert exit_code == 0  # the SIGTERMed replica drained and exited cleanly
    assert check.calls > 100 and check.mismatches == [] and not check.errors


@pytest.mark.slow
def test_without_retries_the_same_faults_lose_calls(built_zoo):
    """The planted defect: the same channel without its retry policy (and without gRPC's
    transparent retries) loses the calls in flight at the killed and at the stopping replica."""
    result, names, _, _, _ = _fail_over(built_zoo, retries=False, checker=False)
    print(f"\nreplicas without retries: {result.summary()['requests']} calls, errors {result.errors}")
    assert sum(result.errors.values()) > 0 and set(result.errors) <= {"UNAVAILABLE", "CANCELLED"}
    assert set(result.per_replica) == set(names)


def test_bench_prints_who_answered_how_many():
    row = {"series": "service", "api": "neural", "rpc": "Predict", "batch": 1, "concurrency": 4, "p50_us": 900.0,
           "p99_us": 2000.0, "req_per_s": 3000.0, "items_per_s": 3000.0, "us_per_item": 900.0, "errors": {},
           "per_replica": {"127.0.0.1:1001 pid 7": 300, "127.0.0.1:1002 pid 8": 100}}
    lines = grpc_table_lines({"rows": [row, {**row, "per_replica": {}}]})
    split = [line for line in lines if "answered by" in line]
    # a single target prints no split
    assert split == ["service neural b1 c4: answered by 127.0.0.1:1001 pid 7: 300 (75%), "
                     "127.0.0.1:1002 pid 8: 100 (25%)"]


def test_a_comma_list_becomes_one_ipv4_target_and_names_are_resolved():
    assert grpc_target("127.0.0.1:1,localhost:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    for kept in ("127.0.0.1:50053", "dns:///replicas.local:50053", "ipv4:10.0.0.1:1,10.0.0.2:1"):
        assert grpc_target(kept) == kept
    assert replicated("a:1,b:2") and replicated("dns:///a:1") and not replicated("localhost:50053")
    with pytest.raises(RpsInferError, match="IPv4"):
        grpc_target("127.0.0.1:1,no-such-host.invalid:2")


def test_the_service_config_balances_replicas_and_retries_every_idempotent_service():
    config = json.loads(service_config(balance=True))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    full_names = {neural_pb2.DESCRIPTOR.services_by_name["NeuralService"].full_name,
                  predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name}
    assert set(IDEMPOTENT_SERVICES) == full_names <= {n["service"] for n in method["name"]}
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "CANCELLED"]
    assert "methodConfig" not in json.loads(service_config(balance=False, retries=False))


@pytest.mark.parametrize("text", ["a:1,b:2", "dns:///replicas:50053", "ipv4:127.0.0.1:1,127.0.0.1:2", "h:50053"])
def test_target_argument_takes_replicas(text):
    assert common.target(text) == text


@pytest.mark.parametrize("text", ["a:1,b", "a:1,:2", "a:99999", "dns:", "nohost"])
def test_target_argument_refuses_malformed_lists(text):
    with pytest.raises(argparse.ArgumentTypeError):
        common.target(text)
