"""Hypothesis-driven malformed requests against a real server, on both APIs.

Every bad call must get a non-OK status from a small allowed set (never UNKNOWN, never
INTERNAL: none of these requests is a server fault), within its deadline, and the
server must answer a valid request correctly afterwards. At least 2,000 cases per run;
``max_examples`` is explicit because the CI profile would run 100.
"""

from __future__ import annotations

import math
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
CASES = {"v2": 900, "neural": 500, "bytes": 700}  # 2,100 cases per run


@pytest.fixture(scope="module")
def server(built_zoo, tmp_path_factory):
    repository = tmp_path_factory.mktemp("fuzz-repository")
    (repository / "broken.onnx").write_bytes(b"not a graph")  # serves as not ready: UNAVAILABLE
    (repository / "digits.onnx").write_bytes(built_zoo["digits-logreg"].onnx_path.read_bytes())
    wide_graph(repository / "wide.onnx")  # 64 bytes in, 1.6 MB out
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--model-repository", str(repository), "--max-batch-size", "64",
                       "--max-message-mb", "1") as proc:
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
