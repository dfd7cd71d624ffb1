"""Hypothesis-driven malformed requests against a real server, on both APIs and over HTTP.

Every bad call must get a non-OK status from a small allowed set (never UNKNOWN, never
INTERNAL: none of these requests is a server fault), within its deadline, and the
server must answer a valid request correctly afterwards; over HTTP, no hostile request
(nesting, huge numbers, wrong types, truncated bodies, slow senders) gets a 5xx. At least
2,000 cases per run; ``max_examples`` is explicit because the CI profile would run 100.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import time
from collections import Counter

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rps_infer.client import V2Client
from rps_infer.compare import compare
from rps_infer.game import realistic_positions
from rps_infer.runtime import open_backend
from rps_infer.serving.protos import neural_pb2, predict_v2_pb2

from .onnx_graphs import wide_graph
from .server_process import ServerProcess

ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE}
V2_METHODS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
NEURAL_METHODS = ("Predict", "BatchPredict", "GetModelInfo")
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES", "BF16")
MODELS = ("policy", "value", "digits", "broken")
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
CASES = {"v2": 900, "neural": 500, "bytes": 700, "http": 500}  # 2,600 cases per run


@pytest.fixture(scope="module")
def server(built_zoo, tmp_path_factory):
    repository = tmp_path_factory.mktemp("fuzz-repository")
    (repository / "broken.onnx").write_bytes(b"not a graph")  # serves as not ready: UNAVAILABLE
    (repository / "digits.onnx").write_bytes(built_zoo["digits-logreg"].onnx_path.read_bytes())
    wide_graph(repository / "wide.onnx")  # 64 bytes in, 1.6 MB out
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--model-repository", str(repository), "--max-batch-size", "64",
                       "--max-message-mb", "1", "--http-port", "0", "--http-header-timeout", "1",
                       "--http-body-timeout", "1") as proc:
        yield proc


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def _call(channel, service: str, method: str, payload: bytes):
    """Send raw bytes; returns the status code (OK or the error's)."""
    call = channel.unary_unary(f"/{service}/{method}")
    code, details = grpc.StatusCode.OK, ""
    try:
        call(payload, timeout=10)
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details()
    assert code == grpc.StatusCode.OK or code in ALLOWED, f"{method}: {code} {details}"
    return code


def _report(what: str, codes: list) -> None:
    """The status counts (shown with pytest -s; docs/reliability.md quotes them)."""
    counts = ", ".join(f"{code.name} {n}" for code, n in Counter(codes).most_common())
    print(f"\nfuzz {what}: {len(codes)} cases: {counts}")


def _still_correct(server, built_zoo):
    x = realistic_positions(3, 11)
    with V2Client(server.target) as c:
        got = c.infer("policy", {"input": x})
    with open_backend(built_zoo["policy"].onnx_path) as backend:
        assert compare(backend.infer({"input": x}), got, "fp32")
    assert server.proc.poll() is None


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)
dims = st.one_of(st.integers(-3, 100), st.sampled_from([0, 81, 64, 2**31, 2**40, 2**62, -(2**62)]))


@st.composite
def v2_requests(draw) -> bytes:
    """A ModelInferRequest that is wrong in one or several ways (or, rarely, right)."""
    name = draw(st.sampled_from((*MODELS, "?")))  # 4 in 5 name a model the server knows
    request = predict_v2_pb2.ModelInferRequest(model_name=draw(st.text(max_size=12)) if name == "?" else name,
                                               id=draw(st.text(max_size=8)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        shape = draw(st.lists(dims, max_size=4))
        tensor = request.inputs.add(name=draw(st.one_of(st.just("input"), st.text(max_size=6))),
                                    datatype=draw(st.one_of(st.sampled_from(DATATYPES), st.text(max_size=5))),
                                    shape=shape)
        small = 0 <= math.prod(max(d, 0) for d in shape) <= 4096 and all(d >= 0 for d in shape)
        if raw:
            if small and draw(st.booleans()):  # the right byte count for FP32, values anything
                values = draw(st.lists(finite_or_not, min_size=math.prod(shape), max_size=math.prod(shape)))
                request.raw_input_contents.append(np.asarray(values, np.float32).tobytes())
            else:
                request.raw_input_contents.append(draw(st.binary(max_size=400)))
        else:
            tensor.contents.fp32_contents.extend(draw(st.lists(finite_or_not, max_size=200)))
            tensor.contents.int64_contents.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)))
    for name in draw(st.lists(st.sampled_from(["output", "label", "probabilities", "nope"]), max_size=2)):
        request.outputs.add(name=name)
    return request.SerializeToString()


@st.composite
def neural_requests(draw) -> tuple[str, bytes]:
    model_type = draw(st.one_of(st.sampled_from(["policy", "value"]), st.text(max_size=8)))
    features = st.lists(finite_or_not, max_size=100)
    if draw(st.booleans()):
        return "Predict", neural_pb2.PredictRequest(model_type=model_type, features=draw(features)).SerializeToString()
    inputs = [neural_pb2.InputFeatures(features=f) for f in draw(st.lists(features, max_size=70))]
    return "BatchPredict", neural_pb2.BatchPredictRequest(model_type=model_type, inputs=inputs).SerializeToString()


def test_malformed_model_infer_requests(server, channel, built_zoo):
    codes = []

    @settings(FUZZ, max_examples=CASES["v2"])
    @given(payload=v2_requests())
    def run(payload):
        codes.append(_call(channel, "inference.GRPCInferenceService", "ModelInfer", payload))

    run()
    assert len(codes) >= CASES["v2"]
    seen = set(codes)  # the fuzzer reached validation, unknown models and the broken model
    assert {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE} <= seen
    _report("ModelInfer", codes)
    _still_correct(server, built_zoo)


def test_malformed_neural_requests(server, channel, built_zoo):
    codes = []

    @settings(FUZZ, max_examples=CASES["neural"])
    @given(request=neural_requests())
    def run(request):
        method, payload = request
        codes.append(_call(channel, "neural.NeuralService", method, payload))

    run()
    assert len(codes) >= CASES["neural"]
    _report("NeuralService", codes)
    _still_correct(server, built_zoo)


def test_random_bytes_to_every_method(server, channel, built_zoo):
    methods = [("inference.GRPCInferenceService", m) for m in V2_METHODS] + \
              [("neural.NeuralService", m) for m in NEURAL_METHODS]
    codes = []

    @settings(FUZZ, max_examples=CASES["bytes"])
    @given(method=st.sampled_from(methods), payload=st.binary(max_size=300))
    def run(method, payload):
        codes.append(_call(channel, *method, payload))

    run()
    assert len(codes) >= CASES["bytes"]
    _report("random bytes", codes)
    _still_correct(server, built_zoo)


def test_oversized_messages_are_resource_exhausted_both_ways(server, channel, built_zoo):
    request = predict_v2_pb2.ModelInferRequest(model_name="policy")
    request.inputs.add(name="input", datatype="FP32", shape=[4000, 81])
    request.raw_input_contents.append(np.zeros((4000, 81), np.float32).tobytes())  # 1.3 MB > 1 MB limit
    assert _call(channel, "inference.GRPCInferenceService", "ModelInfer",
                 request.SerializeToString()) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with V2Client(server.target) as c:  # the answer would be 1.6 MB: the server refuses to send it
        assert c.infer("wide", {"input": np.ones((1, 4), np.float32)})["output"].shape == (1, 200_000)
        with pytest.raises(grpc.RpcError) as refused:
            c.infer("wide", {"input": np.ones((2, 4), np.float32)})
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_correct(server, built_zoo)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30)
HTTP_MODELS = ("policy", "value", "digits", "wide", "nope")  # not "broken": its 503 is its true state


@st.composite
def hostile_http(draw) -> tuple[bytes, list[bytes], bool]:
    """(the request's bytes, how it is cut into pieces sent apart, whether it is cut short)."""
    model = draw(st.sampled_from(HTTP_MODELS))
    infer = f"/v2/models/{model}/infer"
    path = draw(st.sampled_from([infer, infer, infer, infer, f"/v2/models/{model}/versions/1/infer",
                                 f"/v2/models/{model}", "/v2", "/v2/health/live", "/nope", "/v2/models//infer"]))
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "PUT"]))
    kind = draw(st.sampled_from(["v2", "v2", "any json", "deep", "bytes"]))
    if kind == "v2":
        tensor = {"name": draw(st.sampled_from(["input", "x"])), "datatype": draw(st.sampled_from(DATATYPES)),
                  "shape": draw(st.one_of(st.lists(dims, max_size=3), json_values)), "data": draw(json_values)}
        if draw(st.booleans()):
            tensor["parameters"] = {"binary_data_size": draw(st.one_of(st.integers(-5, 400), json_values))}
        body = json.dumps({"inputs": draw(st.sampled_from([[tensor], [tensor, tensor], tensor])),
                           "outputs": draw(st.one_of(st.just([]), json_values)), "id": draw(json_values),
                           "parameters": draw(st.one_of(st.just({"binary_data_output": True}), json_values))}).encode()
        body += draw(st.binary(max_size=40))  # binary data, or trailing bytes
    elif kind == "any json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "deep":
        depth = draw(st.sampled_from([40, 1000, 100_000]))
        body = b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 81], "data": ' + b"[" * depth + \
            (b"]" * depth if draw(st.booleans()) else b"") + b"}]}"
    else:
        body = draw(st.binary(max_size=300))
    headers = [f"{method} {path} HTTP/1.1", "Host: fuzz", f"Content-Length: {len(body)}"]
    if draw(st.booleans()):
        headers.append(f"Inference-Header-Content-Length: {draw(st.one_of(st.integers(-3, 500), st.text(max_size=4)))}")
    request = "\r\n".join(headers).encode("utf-8", "replace") + b"\r\n\r\n" + body
    cuts = sorted(draw(st.lists(st.integers(1, max(len(request) - 1, 1)), max_size=2, unique=True)))
    pieces = [request[a:b] for a, b in zip([0, *cuts], [*cuts, len(request)], strict=True)]
    truncated = draw(st.integers(0, 9)) == 0  # one in ten: the client leaves before the end
    return request, pieces[:-1] if truncated and len(pieces) > 1 else pieces, truncated


def _send_http(target: str, pieces: list[bytes]) -> int | None:
    """The status the server answered, or None when it answered nothing (the client left)."""
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before the end (a bad header)
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(0.01)  # a slow sender
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return response.status


def test_hostile_http_requests_never_get_a_5xx(server, built_zoo):
    statuses = []

    @settings(FUZZ, max_examples=CASES["http"])
    @given(case=hostile_http())
    def run(case):
        request, pieces, truncated = case
        status = _send_http(server.http_target, pieces)
        assert status is not None or truncated, f"no answer to {request[:300]!r}"
        assert status is None or status < 500, f"{status} for {request[:300]!r}"
        statuses.append(status)

    run()
    assert len(statuses) >= CASES["http"]
    seen = set(statuses)
    assert {200, 400, 404, 405} <= seen, Counter(statuses)  # the fuzzer reached answers, checks and routes
    print(f"\nfuzz HTTP: {len(statuses)} cases: " + ", ".join(f"{k} {n}" for k, n in Counter(statuses).most_common()))
    _still_correct(server, built_zoo)
