"""The Open Inference Protocol over HTTP/REST (``--http-port``), against a real server: a plain
JSON POST (what curl sends) and ``tritonclient.http`` get the answers gRPC gives, bit for bit;
every bad input gRPC refuses is refused over HTTP with the matching status and the same
message; model versions; the binary-tensor extension; token and TLS."""

import json
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

from rps_infer.client import V2Client
from rps_infer.game import realistic_positions
from rps_infer.serving.protos import predict_v2_pb2, predict_v2_pb2_grpc

from .certs import issue, make_ca
from .server_process import ServerProcess, free_ports

TOKEN = "http-token-for-tests"
HTTP_OF = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNAVAILABLE: 503}


@pytest.fixture(scope="module")
def repository(built_zoo, tmp_path_factory):
    """``versioned`` has the policy as version 1 and the value model as version 2 (same input)."""
    d = tmp_path_factory.mktemp("http-repository")
    for version, name in ((1, "policy"), (2, "value")):
        (d / "versioned" / str(version)).mkdir(parents=True)
        shutil.copy(built_zoo[name].onnx_path, d / "versioned" / str(version) / "model.onnx")
    shutil.copy(built_zoo["unet-ci"].onnx_path, d / "unet.onnx")
    (d / "broken.onnx").write_bytes(b"not a graph")
    return d


@pytest.fixture(scope="module")
def server(repository, built_zoo):
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--model-repository", str(repository), "--http-port", "0", "--max-batch-size", "64") as proc:
        assert proc.http_target is not None, "no 'rps-infer http on' line before the serving line"
        yield proc


def _http(target: str, path: str, body: bytes | None = None, headers: dict | None = None, context=None,
          scheme: str = "http") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{scheme}://{target}{path}", body, headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _infer_json(target: str, model: str, x: np.ndarray, path: str | None = None) -> tuple[int, dict]:
    body = {"id": "r1", "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                    "data": x.ravel().tolist()}]}
    status, _, raw = _http(target, path or f"/v2/models/{model}/infer", json.dumps(body).encode(),
                           {"Content-Type": "application/json"})
    return status, json.loads(raw)


def test_health_metadata_and_readiness(server):
    assert _http(server.http_target, "/v2/health/live")[0] == 200
    status, _, body = _http(server.http_target, "/v2/health/ready")
    assert status == 503 and json.loads(body) == {"ready": False}  # 'broken' is not ready
    meta = json.loads(_http(server.http_target, "/v2")[2])
    assert meta["name"] == "rps_infer" and "binary_tensor_data" in meta["extensions"]
    model = json.loads(_http(server.http_target, "/v2/models/policy")[2])
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 81]}]
    assert model["platform"] == "onnxruntime_onnx" and model["parameters"]["max_batch_size"] == 0
    assert _http(server.http_target, "/v2/models/policy/ready")[0] == 200
    assert _http(server.http_target, "/v2/models/broken/ready")[0] == 503
    assert _http(server.http_target, "/v2/models/nope/ready")[0] == 404


def test_a_plain_json_post_gets_what_grpc_gets(server):
    x = realistic_positions(5, 3)
    status, reply = _infer_json(server.http_target, "policy", x)
    assert status == 200 and reply["id"] == "r1" and reply["model_version"] == "1"
    out = reply["outputs"][0]
    got = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
    with V2Client(server.target) as c:
        want = c.infer("policy", {"input": x})["output"]
    np.testing.assert_array_equal(got, want)


def test_versions_the_highest_by_default_an_unknown_one_not_found(server):
    x = realistic_positions(3, 4)
    status, newest = _infer_json(server.http_target, "versioned", x)
    assert status == 200 and newest["model_version"] == "2" and newest["outputs"][0]["shape"] == [3, 1]
    status, first = _infer_json(server.http_target, "versioned", x, "/v2/models/versioned/versions/1/infer")
    assert status == 200 and first["model_version"] == "1" and first["outputs"][0]["shape"] == [3, 9]
    status, missing = _infer_json(server.http_target, "versioned", x, "/v2/models/versioned/versions/3/infer")
    assert status == 404 and "no version '3'" in missing["error"]
    assert json.loads(_http(server.http_target, "/v2/models/versioned")[2])["versions"] == ["1", "2"]
    stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.target))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(predict_v2_pb2.ModelInferRequest(model_name="versioned", model_version="3"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "no version '3'" in info.value.details()
    meta = stub.ModelMetadata(predict_v2_pb2.ModelMetadataRequest(name="versioned", version="1"), timeout=10)
    assert list(meta.versions) == ["1", "2"] and list(meta.outputs[0].shape) == [-1, 9]


def _bad_cases():
    """(name, model, JSON inputs) of requests both protocols must refuse alike."""
    good = {"name": "input", "datatype": "FP32", "shape": [1, 81], "data": [0.0] * 81}
    return [
        ("wrong width", "policy", [{**good, "shape": [1, 80], "data": [0.0] * 80}]),
        ("wrong datatype", "policy", [{**good, "datatype": "INT32", "data": [0] * 81}]),
        ("wrong input name", "policy", [{**good, "name": "x"}]),
        ("empty batch", "policy", [{**good, "shape": [0, 81], "data": []}]),
        ("over max batch", "policy", [{**good, "shape": [65, 81], "data": [0.0] * 65 * 81}]),
        ("NaN", "policy", [{**good, "data": [float("nan")] + [0.0] * 80}]),
        ("unknown model", "nope", [good]),
        ("not ready", "broken", [good]),
    ]


@pytest.mark.parametrize(("case", "model", "inputs"), _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_every_bad_input_gets_the_matching_status_and_message_on_both(server, case, model, inputs):
    request = predict_v2_pb2.ModelInferRequest(model_name=model)
    for t in inputs:
        request.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        values = np.asarray(t["data"], dtype=np.int32 if t["datatype"] == "INT32" else np.float32)
        request.raw_input_contents.append(values.tobytes())
    stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.target))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=10)
    headers = {}
    if case == "NaN":  # JSON has no NaN: it travels as binary data, as from tritonclient
        header = json.dumps({"inputs": [{**t, "data": None, "parameters": {"binary_data_size": 4 * 81}}
                                        for t in inputs]}).encode()
        body, headers = header + np.asarray(inputs[0]["data"], np.float32).tobytes(), {
            "Inference-Header-Content-Length": str(len(header))}
    else:
        body = json.dumps({"inputs": inputs}).encode()
    status, _, raw = _http(server.http_target, f"/v2/models/{model}/infer", body, headers)
    assert status == HTTP_OF[info.value.code()], (case, status, info.value.code())
    assert json.loads(raw)["error"] == info.value.details()


def test_a_nan_in_json_data_is_a_400_that_says_json_has_none(server):
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 81],
                                   "data": [float("nan")] + [0.0] * 80}]}).encode()  # as Python's json writes it
    status, _, raw = _http(server.http_target, "/v2/models/policy/infer", body)
    assert status == 400 and "JSON has no NaN or Infinity" in json.loads(raw)["error"]


@pytest.mark.parametrize(("body", "header", "message"), [
    (b"{not json", None, "not valid JSON"),
    (b'{"inputs": 3}', None, "Expected `array`, got `int` - at `$.inputs`"),
    (b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, true], "data": []}]}', None,
     "Expected `int`, got `bool` - at `$.inputs[0].shape[1]`"),
    (b'{"inputs": []}', "99", "outside the body"),
    (b'{"inputs": []}', "x", "must be a number"),
])
def test_malformed_http_bodies_are_400_with_the_reason(server, body, header, message):
    headers = {"Inference-Header-Content-Length": header} if header else {}
    status, _, raw = _http(server.http_target, "/v2/models/policy/infer", body, headers)
    assert status == 400 and message in json.loads(raw)["error"]


def test_tritonclient_http_json_and_binary_tensors_match_grpc(server, tmp_path):
    """tritonclient.http (JSON and the binary-tensor extension) in a subprocess, as a user runs it."""
    x = realistic_positions(4, 7)
    frame = {"image": np.random.default_rng(0).random((1, 6, 128, 128), dtype=np.float32),
             "audio": np.random.default_rng(1).random((1, 32, 4, 4), dtype=np.float32)}
    np.savez(tmp_path / "in.npz", x=x, **frame)
    script = f"""
import json, numpy as np, tritonclient.http as th
c = th.InferenceServerClient({server.http_target!r})
d = np.load({str(tmp_path / 'in.npz')!r})
out = {{}}
for binary in (False, True):
    i = th.InferInput("input", list(d["x"].shape), "FP32"); i.set_data_from_numpy(d["x"], binary_data=binary)
    r = c.infer("policy", [i], outputs=[th.InferRequestedOutput("output", binary_data=binary)])
    out["policy_binary" if binary else "policy_json"] = r.as_numpy("output")
inputs = []
for name in ("image", "audio"):
    i = th.InferInput(name, list(d[name].shape), "FP32"); i.set_data_from_numpy(d[name], binary_data=True)
    inputs.append(i)
r = c.infer("unet", inputs)
out.update({{"unet_" + o["name"]: r.as_numpy(o["name"]) for o in r.get_response()["outputs"]}})
np.savez({str(tmp_path / 'out.npz')!r}, **out)
print(json.dumps({{"live": c.is_server_live(), "ready": c.is_model_ready("policy"),
                   "meta": c.get_model_metadata("policy")}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["live"] and result["ready"] and result["meta"]["outputs"][0]["shape"] == [-1, 9]
    got = np.load(tmp_path / "out.npz")
    with V2Client(server.target) as c:
        want = c.infer("policy", {"input": x})["output"]
        unet = c.infer("unet", frame)
    np.testing.assert_array_equal(got["policy_json"], want)
    np.testing.assert_array_equal(got["policy_binary"], want)
    for name, array in unet.items():
        np.testing.assert_array_equal(got[f"unet_{name}"], array)


@pytest.fixture(scope="module")
def secured(built_zoo, tmp_path_factory):
    d = tmp_path_factory.mktemp("http-certs")
    ca, ca_name, ca_key = make_ca(d, "http-ca")
    pem = issue(d, "server", ca_name, ca_key, server=True)
    (d / "token").write_text(TOKEN)
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--http-port", "0", "--tls-cert", str(pem.cert), "--tls-key", str(pem.key),
                       "--auth-token-file", str(d / "token")) as proc:
        yield proc, ssl.create_default_context(cafile=str(ca.cert))


def test_https_and_the_token_apply_to_http_too(secured):
    server, context = secured
    x = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 81], "data": [0.0] * 81}]}).encode()
    path = "/v2/models/policy/infer"
    status, _, body = _http(server.http_target, path, x, context=context, scheme="https")
    assert status == 401 and "Authorization: Bearer" in json.loads(body)["error"]
    wrong = {"Authorization": "Bearer nope"}
    assert _http(server.http_target, path, x, wrong, context=context, scheme="https")[0] == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert _http(server.http_target, path, x, right, context=context, scheme="https")[0] == 200
    assert _http(server.http_target, "/v2/health/ready", context=context, scheme="https")[0] == 200  # probes open
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plaintext to a TLS port: refused
        _http(server.http_target, "/v2/health/live")


def test_workers_share_the_http_port(built_zoo):
    ports = free_ports(2)
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--workers", "2", "--port", str(ports[0]), "--http-port", str(ports[1])) as proc:
        assert proc.http_target == f"127.0.0.1:{ports[1]}"
        answered = set()
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            status, headers, _ = _http(proc.http_target, "/v2/health/live", headers={"Connection": "close"})
            assert status == 200
            answered.add(headers["rps-replica"])
            if len(answered) == 2:
                break
        assert len(answered) == 2, answered
