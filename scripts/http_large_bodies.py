"""What large JSON bodies do to a serving `rps-infer serve --http-port`: readiness latency
while 1 and then 3 concurrent bodies of --megabytes are parsed, and the server's memory
(peak, and after each round: is it returned?). The probe runs in a process of its own, so
the uploading client's GIL does not stall it.

    python scripts/http_large_bodies.py [--megabytes 64] [--rounds 3] [--json FILE]

Prints per round: the bodies' statuses, probes, readiness p50 / p99 / max in ms, the server's
RSS after and its peak (VmHWM) in MB, and that peak plus its child processes' (the parser
process's) peaks: an upper bound on the pod's. Targets (issue 29): readiness p99 < 50 ms, the
pod's peak under a 1 GiB limit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rps_infer.bench.machine import machine_info, machine_line  # noqa: E402
from rps_infer.serving.launch import ServerProcess, serve_command  # noqa: E402

PROBE = r"""
import http.client, json, sys, time
host, port = sys.argv[1].rsplit(":", 1)
end, out = time.monotonic() + float(sys.argv[2]), []
while time.monotonic() < end:
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    start = time.perf_counter()
    c.request("GET", "/v2/health/ready")
    c.getresponse().read()
    out.append(time.perf_counter() - start)
    c.close()
    time.sleep(0.01)
print(json.dumps(out))
"""


def body_of(megabytes: int) -> bytes:
    """A policy request of about ``megabytes`` MB of JSON: flat FP32 data, rows of 81."""
    rows = megabytes * 1_000_000 // (81 * 10)
    data = b",".join([b"0.1234567"] * (rows * 81))
    return b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [%d, 81], "data": [%s]}]}' % (rows, data)


def status_mb(pid: int, key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024


def children(pid: int) -> list[int]:
    """``pid``'s child processes (the parser process, multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def post(target: str, body: bytes, out: list) -> None:
    request = urllib.request.Request(f"http://{target}/v2/models/policy/infer", body,
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            out.append(response.status)
    except urllib.error.HTTPError as exc:
        out.append(exc.code)


def one_round(target: str, pid: int, body: bytes, bodies: int) -> dict:
    statuses: list[int] = []
    senders = [threading.Thread(target=post, args=(target, body, statuses)) for _ in range(bodies)]
    prober = subprocess.Popen([sys.executable, "-c", PROBE, target, str(1.5 * bodies)], stdout=subprocess.PIPE,
                              text=True)
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    probes = sorted(json.loads(prober.communicate()[0]))
    time.sleep(0.5)
    pick = lambda q: round(probes[min(len(probes) - 1, int(len(probes) * q))] * 1e3, 2)  # noqa: E731
    return {"bodies": bodies, "statuses": statuses, "probes": len(probes), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": round(probes[-1] * 1e3, 2), "rss_after_mb": round(status_mb(pid, "VmRSS")),
            "peak_mb": round(status_mb(pid, "VmHWM")),
            # An upper bound on the pod's peak: the children's peaks may not have coincided.
            "with_children_peak_mb": round(status_mb(pid, "VmHWM") + sum(status_mb(c, "VmHWM") for c in children(pid)))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    build = REPO / "models" / "build"
    body = body_of(args.megabytes)
    command = serve_command("--policy", str(build / "policy.onnx"), "--value", str(build / "value.onnx"),
                            "--port", "0", "--http-port", "0", "--max-batch-size", "1000000")
    machine = machine_line({"machine": machine_info()})
    print(machine)
    results = []
    with ServerProcess(command) as server:
        pid = server.proc.pid
        print(f"server RSS at start {status_mb(pid, 'VmRSS'):.0f} MB; bodies of {len(body) / 1e6:.1f} MB")
        for _ in range(args.rounds):
            for bodies in (1, 3):
                row = one_round(server.http_target, pid, body, bodies)
                results.append(row)
                print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rounds": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
