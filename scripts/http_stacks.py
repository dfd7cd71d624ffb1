"""Which HTTP stack serves the v2 REST API, by measurement: the same REST core
(rps_infer.serving.rest) and policy model behind uvicorn + Starlette (h11 / httptools parser;
the reply encoded by msgspec as shipped, or by orjson or stdlib json), aiohttp, hypercorn and
granian (1 worker, the same Starlette app); "served" is the product itself (``rps-infer serve``
with its HTTP port); "mlserver" is the peer, MLServer 1.7.1's REST on the same policy.onnx
through a small onnxruntime MLModel (default parallel_workers=1; "mlserver-inline": 0).

Each server is a subprocess on 127.0.0.1 pinned to CPU 0, the clients run on CPU 1; rounds
interleave the stacks (forward, then backward), the table shows medians and the min-max range
across rounds. Clients (scripts/http_clients.py, none imports the server): at 1 client
http.client on one kept-alive connection and on a fresh connection per request, tritonclient.http
in its own venv, raw gRPC ModelInfer (served and MLServer's gRPC port); at 8 and 32 keep-alive
connections wrk (C). Server CPU per request comes from /proc (the server's whole process tree).

    python scripts/http_stacks.py [--rounds 3] [--seconds 3] [--stacks served,mlserver]
                                  [--clients 1,8,32] [--batch 1] [--json FILE]
                                  [--mlserver-python PATH] [--tritonclient-python PATH]

MLServer's venv (/tmp/mlserver-venv) and tritonclient's (/tmp/tritonclient-venv, unless .venv
has it) are created when missing; wrk comes from Debian (apt-get install -y wrk). What is
missing is skipped with a one-line reason.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_clients as hc

REPO = Path(__file__).resolve().parent.parent
POLICY, VALUE = REPO / "models/build/policy.onnx", REPO / "models/build/value.onnx"
SCRIPT_STACKS = ("uvicorn-h11", "uvicorn-httptools", "uvicorn-httptools-orjson", "uvicorn-httptools-json",
                 "aiohttp", "hypercorn", "granian")
STACKS = (*SCRIPT_STACKS, "served", "mlserver", "mlserver-inline")
GRPC_STACKS = ("served", "mlserver", "mlserver-inline")
CASES = ("1 keep-alive", "1 fresh conn", "1 tritonclient", "1 gRPC ModelInfer", "8 wrk", "32 wrk")
MLSERVER_PACKAGES = ["mlserver==1.7.1", "uvloop<0.22", "onnxruntime", "numpy"]
TARGETS = (  # name, numerator case, denominator case (or a constant), goal
    ("served HTTP keep-alive p50 / gRPC ModelInfer p50", ("served", "1 keep-alive", "p50_us"),
     ("served", "1 gRPC ModelInfer", "p50_us"), "<=", 1.3),
    ("served HTTP keep-alive p50 / fresh connection p50", ("served", "1 keep-alive", "p50_us"),
     ("served", "1 fresh conn", "p50_us"), "<=", 1.0),
    ("served tritonclient.http p50 (us)", ("served", "1 tritonclient", "p50_us"), None, "<", 2000.0),
    ("served req/s at 32 clients / MLServer's (best config)", ("served", "32 wrk", "rps"),
     ("mlserver*", "32 wrk", "rps"), ">=", 1.5),
)
MLSERVER_RUNTIME = '''
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxPolicy(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # as rps-infer serves
        self._session = ort.InferenceSession(self.settings.parameters.uri, options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (out,) = self._session.run(None, {self._input: x})
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("output", out)])
'''


def _route_app():
    """One Starlette route, POST /v2/models/{name}/infer, over the REST core."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from rps_infer.serving import rest
    plane = _plane()

    async def endpoint(request):
        reply = rest.infer(plane, request.path_params["name"], None, await request.body(),
                           request.headers.get(rest.HEADER_LENGTH))
        return Response(reply.body, reply.status, headers=reply.headers)

    return Starlette(routes=[Route("/v2/models/{name}/infer", endpoint, methods=["POST"])])


def _plane():
    from rps_infer.serving.config import ServerConfig
    from rps_infer.serving.dataplane import DataPlane
    from rps_infer.serving.metrics import NullMetrics
    from rps_infer.serving.server import load_registry

    return DataPlane(load_registry(ServerConfig(policy=POLICY, value=VALUE), NullMetrics()))


granian_app = _route_app  # granian imports its target by name in its worker (factory=True)


def serve(stack: str, port: int) -> None:
    """Run one of SCRIPT_STACKS on 127.0.0.1:``port`` until killed."""
    from rps_infer.serving import rest
    if stack.endswith(("-orjson", "-json")):
        import orjson

        class Encoder:  # stands in for rest's msgspec encoder of reply headers
            encode = staticmethod(orjson.dumps if stack.endswith("-orjson")
                                  else lambda o: json.dumps(o, separators=(",", ":")).encode())
        assert hasattr(rest, "_ENCODER"), "rest._ENCODER is gone: update the -orjson/-json stacks"
        rest._ENCODER = Encoder()
    if stack == "aiohttp":
        from aiohttp import web
        plane = _plane()

        async def infer(request):
            reply = rest.infer(plane, request.match_info["name"], None, await request.read(),
                               request.headers.get(rest.HEADER_LENGTH))
            return web.Response(body=reply.body, status=reply.status, headers=reply.headers)

        app = web.Application()
        app.router.add_post("/v2/models/{name}/infer", infer)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    elif stack == "hypercorn":
        import asyncio

        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config
        config = Config()
        config.bind, config.accesslog, config.loglevel = [f"127.0.0.1:{port}"], None, "WARNING"
        config.keep_alive_max_requests = 1 << 30  # its default closes a connection after 1000 requests
        asyncio.run(hypercorn_serve(_route_app(), config))
    elif stack == "granian":
        from granian import Granian
        Granian("http_stacks:granian_app", address="127.0.0.1", port=port, interface="asgi", workers=1,
                factory=True, working_dir=Path(__file__).resolve().parent, log_level="warning").serve()
    else:
        import uvicorn
        uvicorn.run(_route_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                    lifespan="off", http="h11" if stack == "uvicorn-h11" else "httptools")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIBC = ctypes.CDLL(None, use_errno=True)


class Server:
    """A server subprocess in its own session, pinned to ``cpu``, dying with this process
    (PR_SET_PDEATHSIG); ``stop()`` kills its whole session."""

    def __init__(self, name: str, command: list[str], cpu: int | None, port: int | None, cwd=None,
                 env=None, timeout: float = 180.0) -> None:
        self.name, self.port, self.grpc_port, self.lines = name, port, None, []
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()

        def pre() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.err, text=True, cwd=cwd,
                                     env=env, preexec_fn=pre, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self.wait_ready(timeout)
        except BaseException:  # Ctrl-C too: nothing half-started is left behind
            self.stop()
            raise

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float) -> None:
        deadline, data = time.monotonic() + timeout, hc.body(1)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            for line in list(self.lines):
                if line.startswith("rps-infer http on "):
                    self.port = int(line.rsplit(":", 1)[1])
                if line.startswith("rps-infer serving on "):
                    self.grpc_port = int(line.split()[3].rsplit(":", 1)[1])
            if self.port and (self.name != "served" or self.grpc_port):
                try:
                    request = urllib.request.Request(f"http://127.0.0.1:{self.port}{hc.PATH}", data, hc.HEADERS)
                    with urllib.request.urlopen(request, timeout=5) as reply:
                        probs = json.loads(reply.read())["outputs"][0]["data"]
                    if len(probs) != 9 or abs(sum(probs) - 1) > 1e-3:
                        raise RuntimeError(f"{self.name}: the policy answered {probs!r}")
                    return
                except (OSError, ValueError, LookupError):
                    pass
            time.sleep(0.2)
        self.err.seek(0)
        tail = " | ".join(self.err.read().strip().splitlines()[-3:])
        raise RuntimeError(f"did not become ready (exit {self.proc.returncode}): {tail[-400:]}")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if not _session_pids(self.proc.pid):
                break
        for pid in _session_pids(self.proc.pid):  # anything that left the process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.err.close()


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def start(stack: str, cpu: int | None, mlserver_python: str | None, workdir: Path) -> Server:
    if stack in SCRIPT_STACKS:
        port = _free_port()
        return Server(stack, [sys.executable, __file__, "--serve", stack, "--port", str(port)], cpu, port)
    if stack == "served":
        return Server(stack, [str(Path(sys.executable).parent / "rps-infer"), "serve", "--policy", str(POLICY),
                              "--value", str(VALUE), "--port", "0", "--http-port", "0"], cpu, None)
    root = workdir / stack
    (root / "policy").mkdir(parents=True)
    (root / "policy" / "runtime.py").write_text(MLSERVER_RUNTIME)
    (root / "policy" / "model-settings.json").write_text(json.dumps(
        {"name": "policy", "implementation": "runtime.OnnxPolicy", "parameters": {"uri": str(POLICY)}}))
    port, grpc_port = _free_port(), _free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "metrics_endpoint": None,
                "debug": False, "parallel_workers": 0 if stack == "mlserver-inline" else 1}
    (root / "settings.json").write_text(json.dumps(settings))
    server = Server(stack, [str(Path(mlserver_python).parent / "mlserver"), "start", str(root)], cpu, port,
                    cwd=root, env={**os.environ, "PYTHONPATH": str(root / "policy")})
    server.grpc_port = grpc_port
    return server


def cases(stack: str, clients: list[int], have: dict) -> list[str]:
    names = []
    if 1 in clients:
        names += ["1 keep-alive", "1 fresh conn"] + ["1 tritonclient"] * bool(have["triton"])
        names += ["1 gRPC ModelInfer"] * (stack in GRPC_STACKS)
    return names + [f"{c} wrk" for c in clients if c > 1 and have["wrk"]]


def measure(server: Server, case: str, batch: int, seconds: float, have: dict) -> dict:
    marks = []
    session = server.proc.pid
    mark = lambda: marks.append(hc.server_cpu_s(session))  # noqa: E731
    data = hc.body(batch)
    if case == "1 keep-alive":
        result = hc.keepalive(server.port, data, seconds, mark)
    elif case == "1 fresh conn":
        result = hc.fresh(server.port, data, seconds, mark)
    elif case == "1 tritonclient":
        result = hc.tritonclient(have["triton"], server.port, batch, seconds, mark)
    elif case == "1 gRPC ModelInfer":
        result = hc.grpc_model_infer(server.grpc_port, batch, seconds, mark)
    else:
        result = hc.wrk(server.port, data, int(case.split()[0]), seconds, mark)
    result["cpu_us"] = (marks[1] - marks[0]) / max(result["n"], 1) * 1e6
    return result


def _spread(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    mid = f"{statistics.median(values):,.{digits}f}"
    return mid if len(values) == 1 else f"{mid} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _render(columns, rows, title, numeric) -> str:
    try:
        from rps_infer.tables import render
        return render(columns, rows, title=title, numeric=numeric, width=200)
    except ImportError:  # no rich: plain columns
        return "\n".join([title, *("  ".join(str(c) for c in row) for row in [columns, *rows])])


def targets(runs: dict, rounds: int) -> list[dict]:
    """Each target's ratio within each round (the same run), then their median and range; a
    ``stack*`` denominator takes the best (largest) of the stacks so named."""
    def value(spec, r):
        if spec is None:
            return 1.0
        stack, case, key = spec
        found = [runs[(s, case)][r][key] for s in STACKS if (s == stack or (stack.endswith("*") and
                 s.startswith(stack[:-1]))) and r in runs.get((s, case), {})]
        return max(found) if found else None

    out = []
    for name, top, below, op, goal in TARGETS:
        pairs = [(value(top, r), value(below, r)) for r in range(rounds)]
        values = [a / b for a, b in pairs if a and b]
        mid = statistics.median(values) if values else None
        ok = mid is not None and {"<=": mid <= goal, "<": mid < goal, ">=": mid >= goal}[op]
        out.append({"target": name, "goal": f"{op} {goal:g}", "median": mid, "values": values,
                    "verdict": "-" if mid is None else "PASS" if ok else "MISS"})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per case (wrk: rounded, at least 1)")
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"comma-separated subset of {','.join(STACKS)}")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated subset of 1,8,32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--mlserver-python", help="a python with mlserver 1.7.1 (default: /tmp/mlserver-venv)")
    parser.add_argument("--tritonclient-python", help="a python with tritonclient[http] ('none': skip it)")
    parser.add_argument("--serve", choices=SCRIPT_STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    stacks = [s for s in args.stacks.split(",") if s]
    clients = sorted({int(c) for c in args.clients.split(",")})
    if bad := [s for s in stacks if s not in STACKS] + [c for c in clients if c not in (1, 8, 32)]:
        parser.error(f"unknown stacks or clients: {bad}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also where a shell started it ignoring SIGINT
    notes, have = [], {}
    have["wrk"] = hc.wrk_path()
    if not have["wrk"] and any(c > 1 for c in clients):
        notes.append("wrk is missing, 8/32 clients skipped: install it with `sudo apt-get install -y wrk`")
    have["triton"] = None if args.tritonclient_python == "none" else args.tritonclient_python
    if 1 in clients and args.tritonclient_python is None:
        if subprocess.run([sys.executable, "-c", "import tritonclient.http"], capture_output=True).returncode == 0:
            have["triton"] = sys.executable
        else:
            have["triton"], why = hc.ensure_venv(Path("/tmp/tritonclient-venv"), ["tritonclient[http]", "numpy"],
                                                 "tritonclient.http")
            if why:
                notes.append(f"tritonclient skipped: {why}")
    mlserver_python = args.mlserver_python
    if any(s.startswith("mlserver") for s in stacks) and not mlserver_python:
        mlserver_python, why = hc.ensure_venv(Path("/tmp/mlserver-venv"), MLSERVER_PACKAGES, "mlserver")
        if why:
            notes.append(f"MLServer skipped: {why}")
            stacks = [s for s in stacks if not s.startswith("mlserver")]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, cpus[1:])  # this process, wrk and tritonclient: the client CPUs
    servers: dict[str, Server] = {}
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="http-stacks-") as workdir:
            for stack in stacks:
                try:
                    servers[stack] = start(stack, server_cpu, mlserver_python, Path(workdir))
                except (RuntimeError, OSError) as exc:
                    notes.append(f"{stack} skipped: {exc}")
            live = [s for s in stacks if s in servers]
            for r in range(args.rounds):
                for stack in live if r % 2 == 0 else live[::-1]:
                    for case in cases(stack, clients, have):
                        print(f"round {r + 1}/{args.rounds} {stack} {case}", file=sys.stderr, flush=True)
                        try:
                            runs.setdefault((stack, case), {})[r] = measure(servers[stack], case, args.batch,
                                                                             args.seconds, have)
                        except Exception as exc:  # one failing case must not lose the run
                            notes.append(f"round {r + 1} {stack} {case}: {type(exc).__name__}: {exc}")
    finally:
        for server in servers.values():
            server.stop()
    rows, table = [], {}
    for (stack, case), by_round in runs.items():
        got = list(by_round.values())
        col = lambda k, got=got: [g[k] for g in got]  # noqa: E731
        errors = sum(col("errors"))
        rows.append([stack, case, _spread(col("p50_us")), _spread(col("p99_us")), _spread(col("rps")),
                     _spread(col("cpu_us")), errors or ""])
        table[f"{stack} | {case}"] = {k: {"median": statistics.median(col(k)), "range": [min(col(k)), max(col(k))],
                                          "rounds": col(k)} for k in ("p50_us", "p99_us", "rps", "cpu_us")}
        table[f"{stack} | {case}"]["errors"] = errors
    rows.sort(key=lambda row: (STACKS.index(row[0]), CASES.index(row[1])))
    verdicts = targets(runs, args.rounds)
    print(f"machine: {hc.machine_line()}; server on CPU {server_cpu}, clients on CPUs {cpus[1:] or cpus}")
    print(f"{args.rounds} round(s), {args.seconds:g} s per case, policy b{args.batch}, JSON tensors")
    print(_render(["stack", "clients", "p50 us", "p99 us", "req/s", "server CPU us/req", "errors"], rows,
                  "median (min-max) across rounds", ["p50 us", "p99 us", "req/s", "server CPU us/req", "errors"]))
    print()
    print(_render(["target", "median", "rounds", "goal", "verdict"],
                  [[v["target"], "-" if v["median"] is None else f"{v['median']:.2f}",
                    " ".join(f"{x:.2f}" for x in v["values"]), v["goal"], v["verdict"]] for v in verdicts],
                  "targets (ratio within each round, then the median)", ["median"]))
    for note in notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps({"machine": hc.machine_line(), "rounds": args.rounds,
                                         "seconds": args.seconds, "batch": args.batch, "cases": table,
                                         "targets": verdicts, "notes": notes,
                                         "servers": {s: v.proc.pid for s, v in servers.items()},
                                         "tools": {"wrk": have["wrk"], "tritonclient_python": have["triton"],
                                                   "mlserver_python": mlserver_python}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
