"""scripts/http_stacks.py and scripts/http_clients.py: wrk's report parsed, the targets computed
within each round, and a short end-to-end run on two stacks that leaves no server behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
import http_clients  # noqa: E402
import http_stacks  # noqa: E402

WRK_REPORT = """Running 1s test @ http://127.0.0.1:18777/v2/models/policy/infer
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   643.99us  417.59us   6.77ms   95.10%
    Req/Sec     2.82k   279.36     3.35k    63.64%
  Latency Distribution
     50%  586.00us
     75%  669.00us
     90%    0.85ms
     99%    2.78ms
  3085 requests in 1.10s, 1.53MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   2803.78
Transfer/sec:      1.39MB
"""


def test_wrk_report_parsed():
    got = http_clients.parse_wrk(WRK_REPORT)
    assert got == {"p50_us": 586.0, "p99_us": 2780.0, "rps": 2803.78, "n": 3085, "errors": 7,
                   "seconds": pytest.approx(1.1)}


def test_targets_are_ratios_within_each_round_against_the_best_mlserver():
    case = lambda **kw: {0: kw}  # noqa: E731
    runs = {("served", "1 keep-alive"): {0: {"p50_us": 300.0}, 1: {"p50_us": 500.0}},
            ("served", "1 gRPC ModelInfer"): {0: {"p50_us": 250.0}, 1: {"p50_us": 250.0}},
            ("served", "32 wrk"): case(rps=6000.0),
            ("mlserver", "32 wrk"): case(rps=1000.0), ("mlserver-inline", "32 wrk"): case(rps=3000.0)}
    got = {t["target"]: t for t in http_stacks.targets(runs, rounds=2)}
    grpc = got["served HTTP keep-alive p50 / gRPC ModelInfer p50"]
    assert grpc["values"] == [1.2, 2.0] and grpc["median"] == 1.6 and grpc["verdict"] == "MISS"
    peer = got["served req/s at 32 clients / MLServer's (best config)"]
    assert peer["values"] == [2.0] and peer["verdict"] == "PASS"
    assert got["served HTTP keep-alive p50 / fresh connection p50"]["verdict"] == "-"  # not measured


def test_a_short_run_measures_both_protocols_and_leaves_no_server(built_zoo, tmp_path):
    """built_zoo: the checkout's models/build, which the script serves, is built."""
    out = tmp_path / "run.json"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "http_stacks.py"), "--rounds", "1", "--seconds", "0.3",
                           "--stacks", "uvicorn-httptools,served", "--clients", "1", "--tritonclient-python", "none",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(out.read_text())
    for name in ("uvicorn-httptools | 1 keep-alive", "served | 1 fresh conn", "served | 1 gRPC ModelInfer"):
        assert run["cases"][name]["p50_us"]["median"] > 0 and run["cases"][name]["errors"] == 0, name
    assert "p50 us" in proc.stdout and ("PASS" in proc.stdout or "MISS" in proc.stdout)
    assert set(run["servers"]) == {"uvicorn-httptools", "served"}
    assert not [pid for pid in run["servers"].values() if os.path.exists(f"/proc/{pid}")]
