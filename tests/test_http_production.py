"""The HTTP v2 API under what production sends it: reused connections, huge and hostile
bodies, slow and vanishing clients, unknown routes; and each bound's check failing on a server
with its defect planted (Nagle on, no body limit, no depth limit, no header timeout)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import msgspec
import numpy as np
import pytest

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import http_protocol, v2json
from rps_infer.serving.config import ServerConfig
from rps_infer.serving.dataplane import DataPlane
from rps_infer.serving.http import HttpServer, bind, build_app
from rps_infer.serving.http_protocol import HttpLimits
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.protos import predict_v2_pb2, predict_v2_pb2_grpc
from rps_infer.serving.server import load_registry

from . import http_checks as checks
from .server_process import ServerProcess, free_ports

LIMIT_MB = 1


@pytest.fixture(scope="module")
def server(built_zoo):
    metrics_port = free_ports(1)[0]
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--http-port", "0", "--max-message-mb", str(LIMIT_MB), "--http-header-timeout", "1",
                       "--http-body-timeout", "1", "--metrics-port", str(metrics_port), "--log-level", "DEBUG") as proc:
        proc.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield proc


@contextlib.contextmanager
def in_process(built_zoo, limits: HttpLimits):
    """The HTTP API alone in this process (where a test can plant a defect), on a free port."""
    config = ServerConfig(policy=built_zoo["policy"].onnx_path, value=built_zoo["value"].onnx_path)
    http = HttpServer(build_app(DataPlane(load_registry(config, NullMetrics())), None, limits),
                      bind("127.0.0.1", 0, False), None, limits)
    http.start()
    try:
        yield f"127.0.0.1:{http.port}"
    finally:
        http.stop()


def test_each_bound_holds_on_the_server(server):
    checks.check_no_nagle_stall(server.http_target)
    checks.check_body_limit(server.http_target, LIMIT_MB << 20)
    checks.check_depth_limit(server.http_target)
    checks.check_header_timeout(server.http_target, 1)


class _TwoWritesAndNagle(http_protocol.BoundedHttpProtocol):
    """The defect: Nagle on, headers and body written apart (uvicorn's own behaviour on a
    socket made without IPPROTO_TCP)."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        import socket

        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self.transport


def _unbounded_parse(header):
    return msgspec.convert(json.loads(bytes(header)), v2json.RestRequest)


@pytest.mark.parametrize(("defect", "check"), [
    ("nagle", lambda target: checks.check_no_nagle_stall(target)),
    ("no body limit", lambda target: checks.check_body_limit(target, LIMIT_MB << 20)),
    ("no depth limit", lambda target: checks.check_depth_limit(target)),
    ("no header timeout", lambda target: checks.check_header_timeout(target, 1)),
])
def test_each_check_fails_on_its_planted_defect(built_zoo, monkeypatch, defect, check):
    limits = HttpLimits(max_body_bytes=LIMIT_MB << 20, header_timeout_s=1, body_timeout_s=1)
    if defect == "nagle":
        monkeypatch.setattr("rps_infer.serving.http.BoundedHttpProtocol", _TwoWritesAndNagle)
    elif defect == "no body limit":
        limits = HttpLimits(max_body_bytes=1 << 40, header_timeout_s=1, body_timeout_s=10)
    elif defect == "no depth limit":  # Python's json, unguarded, as before the schema
        monkeypatch.setattr(v2json, "parse", _unbounded_parse)
    else:
        limits = HttpLimits(max_body_bytes=LIMIT_MB << 20, header_timeout_s=1e6, body_timeout_s=1)
    with in_process(built_zoo, limits) as target, pytest.raises(AssertionError):
        check(target)


def _post(target: str, path: str, body: bytes, method: str = "POST", headers: dict | None = None):
    request = urllib.request.Request(f"http://{target}{path}", body, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_chunked_body_is_cut_off_at_the_limit_with_413(server):
    with checks.connect(server.http_target) as sock:
        sock.sendall(f"POST {checks.INFER} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        with contextlib.suppress(OSError):  # the server may close while we still send
            for _ in range((LIMIT_MB << 20) // len(chunk) + 4):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, headers, body = checks.read_response(sock)
    assert status == 413 and "limit" in json.loads(body)["error"] and headers.get("connection") == "close"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v3/nothing", 404), ("GET", "/v2/models/policy/infer", 405), ("DELETE", "/v2", 405)])
def test_unknown_routes_and_methods_answer_v2_json(server, method, path, status):
    got, headers, body = _post(server.http_target, path, None, method)
    assert got == status and headers["content-type"] == "application/json"
    assert "error" in json.loads(body), body
    if status == 405:
        assert "Allow" in headers or "allow" in headers


@pytest.mark.parametrize(("data", "message"), [
    ("true", "Expected `float`, got `bool` - at `$[80]`"), ('"0.5"', "Expected `float`, got `str` - at `$[80]`")])
def test_a_bool_or_string_in_fp32_data_is_a_400(server, data, message):
    values = ", ".join(["0.5"] * 80 + [data])
    body = b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 81], "data": [' + values.encode() + b"]}]}"
    status, _, reply = _post(server.http_target, checks.INFER, body)
    assert status == 400 and message in json.loads(reply)["error"]


def test_raw_and_typed_contents_together_are_invalid_argument(server):
    request = predict_v2_pb2.ModelInferRequest(model_name="policy")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[1, 81])
    tensor.contents.fp32_contents.extend([0.5] * 81)
    request.raw_input_contents.append(np.full(81, 0.5, np.float32).tobytes())
    stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.target))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "exactly one" in info.value.details()


def test_a_client_that_goes_away_is_one_debug_line_not_an_error(server):
    before = server.log()
    for _ in range(5):
        with checks.connect(server.http_target) as sock:  # promises 1000 bytes, sends 10, leaves
            sock.sendall(f"POST {checks.INFER} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".encode()
                         + b"0123456789")
    time.sleep(0.5)
    added = server.log()[len(before):]
    assert "Traceback" not in added and " ERROR " not in added, added
    assert added.count("went away") == 5, added


def test_metrics_time_requests_from_first_byte_to_last(server):
    """A body sent in two pieces 0.4 s apart is a request of >= 0.4 s, as its client saw it."""
    def infer_seconds_sum() -> float:
        text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
        found = re.search(r'rps_infer_request_seconds_sum\{api="http",method="infer",model="policy"[^}]*\} (\S+)',
                          text)
        return float(found.group(1)) if found else 0.0

    before = infer_seconds_sum()
    body = checks.POLICY_BODY
    with checks.connect(server.http_target) as sock:
        sock.sendall(f"POST {checks.INFER} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:10])
        time.sleep(0.4)
        sock.sendall(body[10:])
        assert checks.read_response(sock)[0] == 200
    deadline = time.monotonic() + 5  # the server counts the request just after its last write
    while infer_seconds_sum() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert infer_seconds_sum() - before >= 0.4


def _large_body(megabytes: int) -> bytes:
    rows = megabytes * 1_000_000 // (81 * 10)
    data = b",".join([b"0.1234567"] * (rows * 81))
    return b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [%d, 81], "data": [%s]}]}' % (rows, data)


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def test_probes_answer_while_large_bodies_parse_and_memory_stays_bounded(built_zoo):
    """Three 64 MB JSON bodies at once: readiness keeps answering (the script measures its p99),
    every body gets its answer, and the server's peak memory stays under the pod's 1 GiB."""
    body = _large_body(64)
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--http-port", "0", "--max-batch-size", "100000") as proc:
        results, probes = [], []

        def post() -> None:
            results.append(_post(proc.http_target, checks.INFER, body)[0])

        posts = [threading.Thread(target=post) for _ in range(3)]
        for t in posts:
            t.start()
        while any(t.is_alive() for t in posts):
            start = time.perf_counter()
            assert _post(proc.http_target, "/v2/health/ready", None, "GET")[0] == 200
            probes.append(time.perf_counter() - start)
            time.sleep(0.02)
        for t in posts:
            t.join()
        peak = _peak_rss_mb(proc.proc.pid)
    assert results == [200, 200, 200]
    assert len(probes) >= 5 and max(probes) < 1.0, f"readiness took up to {max(probes):.2f} s during the parse"
    assert peak < 1024, f"peak RSS {peak:.0f} MB for three 64 MB bodies"


def test_model_name_names_a_repository_s_one_model_as_kserve_passes_it(built_zoo, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, names in ((one, ["model"]), (two, ["model", "other"])):
        folder.mkdir()
        for name in names:
            (folder / f"{name}.onnx").write_bytes(built_zoo["digits-logreg"].onnx_path.read_bytes())
    with ServerProcess("--model-repository", str(one), "--model-name", "my-isvc", "--http-port", "0") as proc:
        assert _post(proc.http_target, "/v2/models/my-isvc/ready", None, "GET")[0] == 200
        assert _post(proc.http_target, "/v2/models/model/ready", None, "GET")[0] == 404
    with ServerProcess("--model-repository", str(two), "--model-name", "my-isvc", "--http-port", "0") as proc:
        assert _post(proc.http_target, "/v2/models/other/ready", None, "GET")[0] == 200
        assert "--model-name my-isvc not applied: the repository holds 2 models (model, other)" in proc.log()


def test_serve_without_models_where_there_is_no_zoo_says_what_to_pass(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--port", "0"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "RPS_INFER_ZOO": str(tmp_path / "no-zoo.toml")})
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rps-infer serve: error: no models to serve: pass --model-repository DIR"), done.stderr


def test_the_large_body_parser_process_ends_with_a_killed_server(built_zoo):
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--http-port", "0", "--max-batch-size", "100000") as proc:
        assert _post(proc.http_target, checks.INFER, _large_body(2))[0] == 200  # starts the parser process
        children = subprocess.run(["pgrep", "-P", str(proc.proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "no parser process was started for a 2 MB body"
        proc.proc.kill()
        proc.proc.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "processes left behind"


def test_long_flat_json_data_decoded_in_pieces_equals_one_decode_and_names_a_bad_element():
    from rps_infer.serving import codecs

    values = np.random.default_rng(0).random(300_000).astype(np.float32)
    text = json.dumps(values.tolist()).encode()
    assert len(text) > 2 * codecs.JSON_PIECE_BYTES  # three pieces or more
    np.testing.assert_array_equal(codecs.decode_json("x", "FP32", (300_000,), text), values)
    bad = text[:-1] + b", true]"
    with pytest.raises(InvalidRequestError, match=r"got `bool` - at `\$\[300000\]`"):
        codecs.decode_json("x", "FP32", (300_001,), bad)
    with pytest.raises(InvalidRequestError, match="out of bounds for int8"):
        codecs.decode_json("x", "INT8", (600_000,), b"[" + b",".join([b"1"] * 599_999 + [b"300"]) + b"]")
