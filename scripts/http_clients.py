"""The independent clients of ``scripts/http_stacks.py``, none of which imports the server's code
(the gRPC client takes only the v2 proto's message classes): keep-alive and fresh-connection
``http.client`` loops, ``wrk`` at N connections, tritonclient.http in a subprocess of its own
venv, a raw gRPC ModelInfer loop; and the server-side CPU account (``/proc``).

Each client runs a short warm-up, then calls ``mark()`` at the start and end of its measured
window (the caller reads the server's CPU time there) and returns a dict: ``p50_us``,
``p99_us``, ``rps``, ``n`` (requests in the window), ``errors``.

Standalone, against any v2 REST server on 127.0.0.1 (policy model, JSON tensors)::

    python scripts/http_clients.py --port 8080 [--seconds 2] [--batch 1]

The tritonclient runner (``--tritonclient PORT SECONDS BATCH``) is how http_stacks.py runs
tritonclient: in its own interpreter, since tritonclient's generated protos and rps_infer's
cannot share one process.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATH = "/v2/models/policy/infer"
HEADERS = {"Content-Type": "application/json"}
WARMUP_S = 0.3
FRESH_MAX = 20_000  # fresh connections per case at most (TIME_WAIT sockets)


def body(batch: int) -> bytes:
    """The policy request: ``batch`` rows of 81 float32s as JSON."""
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [batch, 81],
                                   "data": [float(i % 2) for i in range(batch * 81)]}]}).encode()


def summary(latencies: list[float], elapsed: float, errors: int = 0) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "rps": len(ordered) / elapsed, "n": len(ordered),
            "errors": errors}


def _loop(request, seconds: float, mark, limit: int | None = None) -> dict:
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        request()
    latencies = []
    mark()
    start = time.perf_counter()
    end = start + seconds
    while (t0 := time.perf_counter()) < end and (limit is None or len(latencies) < limit):
        request()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    mark()
    return summary(latencies, elapsed)


def _post(conn: http.client.HTTPConnection, data: bytes) -> None:
    conn.request("POST", PATH, data, HEADERS)
    reply = conn.getresponse()
    reply.read()
    if reply.status != 200:
        raise RuntimeError(f"HTTP {reply.status}")


def keepalive(port: int, data: bytes, seconds: float, mark) -> dict:
    """One client, one reused connection, closed loop."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    try:
        return _loop(lambda: _post(conn, data), seconds, mark)
    finally:
        conn.close()


def fresh(port: int, data: bytes, seconds: float, mark) -> dict:
    """One client, a new connection for every request (connect + request + close timed)."""
    def once() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        try:
            _post(conn, data)
        finally:
            conn.close()
    return _loop(once, seconds, mark, FRESH_MAX)


def grpc_model_infer(port: int, batch: int, seconds: float, mark) -> dict:
    """One client, one channel: raw unary ModelInfer calls (raw_input_contents, float32)."""
    import grpc
    import numpy as np

    from rps_infer.serving.protos import predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name="policy")
    request.inputs.add(name="input", datatype="FP32", shape=[batch, 81])
    request.raw_input_contents.append((np.arange(batch * 81) % 2).astype("<f4").tobytes())
    payload = request.SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        return _loop(lambda: call(payload, timeout=10), seconds, mark)


def wrk_path() -> str | None:
    return shutil.which("wrk")


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}


def _us(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(port: int, data: bytes, clients: int, seconds: float, mark) -> dict:
    """``clients`` keep-alive connections from one wrk thread, each closed loop; p50/p99 from
    wrk's latency distribution, req/s from its count."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(f'wrk.method = "POST"\nwrk.body = [==[{data.decode()}]==]\n'
                  'wrk.headers["Content-Type"] = "application/json"\n')
    url = f"http://127.0.0.1:{port}{PATH}"
    base = [wrk_path(), "-t1", f"-c{clients}", "--timeout", "10s", "--latency", "-s", lua.name]
    try:
        subprocess.run([*base, "-d1s", url], check=True, capture_output=True, timeout=60)  # warm-up
        mark()
        out = subprocess.run([*base, f"-d{max(1, round(seconds))}s", url], check=True, capture_output=True,
                             text=True, timeout=seconds + 60).stdout
        mark()
    finally:
        os.unlink(lua.name)
    return parse_wrk(out)


def parse_wrk(out: str) -> dict:
    """wrk --latency's report as p50_us, p99_us, rps, n, errors (socket errors + non-2xx), seconds."""
    count, span = re.search(r"(\d+) requests in ([\d.]+[a-z]+),", out).groups()
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {"p50_us": _us(re.search(r"50%\s+(\S+)", out).group(1)),
            "p99_us": _us(re.search(r"99%\s+(\S+)", out).group(1)),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "n": int(count),
            "errors": errors, "seconds": _us(span) / 1e6}


def tritonclient(python: str, port: int, batch: int, seconds: float, mark) -> dict:
    """tritonclient.http (JSON tensors both ways) in ``python``'s own process."""
    proc = subprocess.Popen([python, __file__, "--tritonclient", str(port), str(seconds), str(batch)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "warm":
            raise RuntimeError(f"tritonclient runner failed (exit {proc.wait(30)})")
        mark()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        mark()
        return result
    finally:
        proc.kill()
        proc.wait()


def _run_tritonclient(port: int, seconds: float, batch: int) -> None:
    import numpy as np
    import tritonclient.http as tc

    client = tc.InferenceServerClient(f"127.0.0.1:{port}")
    tensor = tc.InferInput("input", [batch, 81], "FP32")
    tensor.set_data_from_numpy((np.arange(batch * 81) % 2).astype(np.float32).reshape(batch, 81),
                               binary_data=False)
    outputs = [tc.InferRequestedOutput("output", binary_data=False)]
    request = lambda: client.infer("policy", [tensor], outputs=outputs)  # noqa: E731
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        request()
    print("warm", flush=True)
    sys.stdin.readline()
    print(json.dumps(_loop(request, seconds, lambda: None)), flush=True)


def ensure_venv(path: Path, packages: list[str], module: str) -> tuple[str | None, str]:
    """``path``'s python once ``module`` imports there (creating the venv and installing
    ``packages`` if needed): (python, "") or (None, a one-line reason)."""
    python = path / "bin" / "python"
    probe = lambda: subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0  # noqa: E731
    if python.exists() and probe():
        return str(python), ""
    print(f"creating {path} ({' '.join(packages)}) ...", file=sys.stderr, flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True, capture_output=True,
                       timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        tail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip().splitlines()[-1:]
        return None, f"could not install {' '.join(packages)} into {path}: {exc} {' '.join(tail)}"
    return (str(python), "") if probe() else (None, f"{module} does not import in {path}")


def server_cpu_s(session: int) -> float:
    """User + system CPU seconds of every live process in session ``session`` (a server started
    with start_new_session, so its workers and children count too)."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_line() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Linux {os.uname().release}, Python {sys.version.split()[0]}"


def main() -> int:
    if sys.argv[1:2] == ["--tritonclient"]:
        _run_tritonclient(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        return 0
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    data = body(args.batch)
    print(machine_line())
    runs = {"1 keep-alive": lambda: keepalive(args.port, data, args.seconds, lambda: None),
            "1 fresh conn": lambda: fresh(args.port, data, args.seconds, lambda: None)}
    if wrk_path():
        runs |= {f"{c} wrk": (lambda c=c: wrk(args.port, data, c, args.seconds, lambda: None)) for c in (8, 32)}
    for name, run in runs.items():
        r = run()
        print(f"{name:14s} p50 {r['p50_us']:8.0f} us  p99 {r['p99_us']:8.0f} us  {r['rps']:8.0f} req/s  "
              f"errors {r['errors']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
