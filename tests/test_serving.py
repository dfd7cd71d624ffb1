"""The gRPC service end to end: a real server subprocess on a free 127.0.0.1 port."""

import concurrent.futures
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from rps_infer.client import NeuralClient, V2Client
from rps_infer.compare import compare
from rps_infer.game import realistic_positions
from rps_infer.runtime import open_backend

from .onnx_graphs import odd_batch_failure_graph, slow_graph
from .server_process import ServerProcess, free_ports

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(built_zoo, tmp_path_factory):
    d = tmp_path_factory.mktemp("serving-models")
    return {"policy": built_zoo["policy"].onnx_path, "value": built_zoo["value"].onnx_path,
            "odd": odd_batch_failure_graph(d / "odd.onnx"), "slow": slow_graph(d / "slow.onnx")}


@pytest.fixture(scope="module")
def server(models):
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]),
                       "--model", f"odd={models['odd']}", "--model", f"slow={models['slow']}",
                       "--max-batch-size", "64",
                       "--max-message-mb", "1") as proc:
        yield proc


def _expected(path, x):
    with open_backend(path) as backend:
        return backend.infer({"input": x})["output"]


def test_neural_api_matches_in_process_inference(server, models):
    x = realistic_positions(64, 5)
    with NeuralClient(server.target) as c:
        probs, best = c.predict_policy(x[0])
        value = c.predict_value(x[0])
        policy_batch = c.batch_predict("policy", x)
        value_batch = c.batch_predict("value", x)
        info = c.model_info("policy")
    want_p, want_v = _expected(models["policy"], x), _expected(models["value"], x)
    assert compare({"p": want_p[:1]}, {"p": probs[None]}, "fp32")
    assert best == int(np.argmax(want_p[0]))
    assert compare({"v": want_v[:1]}, {"v": np.array([[value]])}, "fp32")
    assert compare({"p": want_p, "v": want_v}, {"p": policy_batch, "v": value_batch}, "fp32")
    assert (info.input_size, info.hidden_size, info.output_size) == (81, 64, 9)
    assert info.device == "cpu" and info.framework.startswith("onnxruntime")


def test_v2_api_raw_and_typed_contents(server, models):
    x = realistic_positions(8, 6)
    with V2Client(server.target) as c:
        assert c.live() and c.ready() and c.ready("policy")
        meta = c.metadata("value")
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input", "FP32", [-1, 81])]
        assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("output", "FP32", [-1, 1])]
        raw = c.infer("policy", {"input": x}, raw=True)["output"]
        typed = c.infer("policy", {"input": x}, raw=False, outputs=["output"])["output"]
    want = _expected(models["policy"], x)
    assert compare({"output": want}, {"output": raw}, "fp32") and compare({"output": want}, {"output": typed}, "fp32")


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def _still_serves(server):
    with NeuralClient(server.target) as c:
        assert c.batch_predict("value", realistic_positions(2)).shape == (2, 1)


BAD_NEURAL = {
    "feature-count": (lambda c, x: c.predict("policy", x[0][:80]), "INVALID_ARGUMENT",
                      "expected 81 features per position, got 80"),
    "unknown-model-type": (lambda c, x: c.predict("dragon", x[0]), "NOT_FOUND", "no model 'dragon'"),
    "v2-only-model": (lambda c, x: c.predict("odd", x[0]), "NOT_FOUND", "policy or value"),
    "empty-batch": (lambda c, x: c.batch_predict("value", x[:0]), "INVALID_ARGUMENT", "empty batch"),
    "nan": (lambda c, x: c.predict("value", np.where(np.arange(81) == 3, np.nan, x[0])), "INVALID_ARGUMENT", "NaN"),
    "inf-in-batch": (lambda c, x: c.batch_predict("policy", np.where(np.arange(81) == 0, np.inf, x)),
                     "INVALID_ARGUMENT", "NaN or Inf"),
    "batch-above-max": (lambda c, x: c.batch_predict("value", np.concatenate([x, x[:1]])), "INVALID_ARGUMENT",
                        "exceeds the server's --max-batch-size 64"),
    "oversized": (lambda c, x: c.batch_predict("value", np.zeros((60, 5000), np.float32)), "RESOURCE_EXHAUSTED", ""),
    "ragged": (lambda c, x: c.stub.BatchPredict(c.pb.BatchPredictRequest(
        inputs=[c.pb.InputFeatures(features=x[0].tolist()), c.pb.InputFeatures(features=x[1, :7].tolist())],
        model_type="value"), timeout=10), "INVALID_ARGUMENT", "expected 81 features per position, got 7 (input 1)"),
    "undecodable-predict": (lambda c, x: _garbage(c, "/neural.NeuralService/Predict"), "INVALID_ARGUMENT",
                            "not a valid PredictRequest"),
    "undecodable-batch": (lambda c, x: _garbage(c, "/neural.NeuralService/BatchPredict"), "INVALID_ARGUMENT",
                          "not a valid BatchPredictRequest"),
}


@pytest.mark.parametrize(("call", "code", "message"), BAD_NEURAL.values(), ids=BAD_NEURAL.keys())
def test_bad_neural_requests_get_a_clear_status_and_the_server_keeps_serving(server, call, code, message):
    x = realistic_positions(64, 1)
    with NeuralClient(server.target) as c:
        got, details = _code(lambda: call(c, x))
    assert got.name == code, details
    assert message in details
    _still_serves(server)


def _garbage(c, method: str):
    """Bytes that are no protobuf message, sent without a client-side serializer."""
    call = c.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    return call(b"\xff\xff\xff\xff", timeout=10)


def _v2_raw(c, model, name, datatype, shape, raw):
    request = c.pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return c.stub.ModelInfer(request, timeout=10)


BAD_V2 = {
    "unknown-model": (lambda c, x: c.infer("dragon", {"input": x}), "NOT_FOUND", "no model 'dragon'"),
    "wrong-input-name": (lambda c, x: c.infer("policy", {"features": x}), "INVALID_ARGUMENT", "expects inputs"),
    "datatype": (lambda c, x: c.infer("policy", {"input": x.astype(np.float64)}), "INVALID_ARGUMENT",
                 "expected datatype FP32, got 'FP64'"),
    "shape": (lambda c, x: c.infer("policy", {"input": x[:, :80]}), "INVALID_ARGUMENT", "expected shape [-1, 81]"),
    "raw-length": (lambda c, x: _v2_raw(c, "policy", "input", "FP32", [2, 81], b"\0" * 100), "INVALID_ARGUMENT",
                   "needs 648 raw bytes, got 100"),
    "negative-dim": (lambda c, x: _v2_raw(c, "policy", "input", "FP32", [-2, 81], b""), "INVALID_ARGUMENT",
                     "negative dimension"),
    "huge-dim": (lambda c, x: _v2_raw(c, "policy", "input", "FP32", [2**40, 81], b""), "INVALID_ARGUMENT",
                 "more than"),
    "unknown-datatype": (lambda c, x: _v2_raw(c, "policy", "input", "FP8", [1, 81], b"\0" * 81), "INVALID_ARGUMENT",
                         "expected datatype FP32"),
    "unknown-output": (lambda c, x: c.infer("policy", {"input": x}, outputs=["logits"]), "INVALID_ARGUMENT",
                       "unknown output"),
    "typed-count": (lambda c, x: c.stub.ModelInfer(_typed_short(c, x), timeout=10), "INVALID_ARGUMENT",
                    "needs 81 values in fp32_contents, got 80"),
    "unknown-model-ready": (lambda c, x: c.ready("dragon"), "NOT_FOUND", "no model"),
    "metadata-unknown": (lambda c, x: c.metadata("dragon"), "NOT_FOUND", "no model"),
    "undecodable": (lambda c, x: _garbage(c, "/inference.GRPCInferenceService/ModelInfer"), "INVALID_ARGUMENT",
                    "not a valid ModelInferRequest"),
}


def _typed_short(c, x):
    request = c.request("policy", {"input": x[:1]}, raw=False)
    del request.inputs[0].contents.fp32_contents[-1]
    return request


@pytest.mark.parametrize(("call", "code", "message"), BAD_V2.values(), ids=BAD_V2.keys())
def test_bad_v2_requests_get_a_clear_status_and_the_server_keeps_serving(server, call, code, message):
    x = realistic_positions(2, 1)
    with V2Client(server.target) as c:
        got, details = _code(lambda: call(c, x))
    assert got.name == code and message in details, details
    _still_serves(server)


def test_backend_fault_is_internal_with_a_message_and_the_server_lives_on(server):
    with V2Client(server.target) as c:
        assert c.infer("odd", {"input": np.ones((2, 3), np.float32)})["output"].shape == (2, 3)
        code, details = _code(lambda: c.infer("odd", {"input": np.ones((3, 3), np.float32)}))
        assert code == grpc.StatusCode.INTERNAL and "Reshape" in details
        assert c.infer("odd", {"input": np.ones((4, 3), np.float32)})["output"].shape == (4, 3)
    _still_serves(server)


def test_deadline_is_honoured(server):
    with V2Client(server.target, timeout=0.05) as c:  # the slow model takes several hundred ms
        code, _ = _code(lambda: c.infer("slow", {"input": np.ones((1, 4), np.float32)}))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    _still_serves(server)


def test_health_and_reflection(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "neural.NeuralService", "inference.GRPCInferenceService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=10)
        names = {s.name for r in responses for s in r.list_services_response.service}
        # v1 (grpcurl's first choice): the same messages on the wire under grpc.reflection.v1
        v1 = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                   request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                   response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        asked = [reflection_pb2.ServerReflectionRequest(list_services=""),
                 reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
                 reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1.ServerReflection")]
        listed, found, itself = list(v1(iter(asked), timeout=10))
    assert {"neural.NeuralService", "inference.GRPCInferenceService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"} <= names
    assert names == {s.name for s in listed.list_services_response.service}
    assert found.file_descriptor_response.file_descriptor_proto and not found.HasField("error_response")
    assert itself.file_descriptor_response.file_descriptor_proto and not itself.HasField("error_response")


def test_a_server_names_itself_to_the_calls_that_ask(server):
    """``rps-replica`` request metadata gets the server's name in the trailing metadata, also with
    an error status; calls that do not ask get none (naming every answer cost ~17 us per Predict)."""
    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc
    from rps_infer.serving.status import ASK_REPLICA, REPLICA_KEY

    request = neural_pb2.PredictRequest(features=[0.0] * 81, model_type="policy")
    with grpc.insecure_channel(server.target) as channel:
        predict = neural_pb2_grpc.NeuralServiceStub(channel).Predict
        plain = predict.with_call(request, timeout=10)[1].trailing_metadata()
        asked = predict.with_call(request, timeout=10, metadata=ASK_REPLICA)[1].trailing_metadata()
        with pytest.raises(grpc.RpcError) as refused:
            predict(neural_pb2.PredictRequest(features=[0.0] * 3, model_type="policy"), timeout=10,
                    metadata=ASK_REPLICA)
    name = f"{server.target} pid {server.pid}"
    assert REPLICA_KEY not in dict(plain)
    assert dict(asked)[REPLICA_KEY] == name
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(refused.value.trailing_metadata())[REPLICA_KEY] == name


def test_sigterm_loses_no_in_flight_call_and_refuses_new_ones(models):
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]),
                       "--model", f"slow={models['slow']}", "--no-batching") as proc, \
            V2Client(proc.target, timeout=60) as c:
        one = np.ones((1, 4), np.float32)
        c.infer("slow", {"input": one})  # warm
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(c.infer, "slow", {"input": one}) for _ in range(4)]
            time.sleep(0.15)  # every call is in flight: each takes several hundred ms
            assert not any(f.done() for f in calls)
            proc.proc.send_signal(15)
            results = [f.result(timeout=60) for f in calls]
        assert all("output" in r for r in results)
        with pytest.raises(grpc.RpcError) as refused:
            NeuralClient(proc.target, timeout=5).predict_value(realistic_positions(1)[0])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.proc.wait(30) == 0


def test_serve_without_arguments_serves_the_bundled_models():
    with ServerProcess() as proc, NeuralClient(proc.target) as c:
        probs, _ = c.predict_policy(realistic_positions(1)[0])
        assert probs.shape == (9,) and abs(float(probs.sum()) - 1) < 1e-5
        assert c.model_info("value").hidden_size == 64


def test_workers_share_a_fixed_port_and_port_zero_is_refused(models):
    (port,) = free_ports()
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]),
                       "--workers", "2", "--port", str(port)) as proc, NeuralClient(proc.target) as c:
        for _ in range(8):
            assert c.batch_predict("value", realistic_positions(4)).shape == (4, 1)
    refused = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--workers", "2", "--port", "0"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--port 0 and --http-port 0 cannot be used with --workers" in refused.stderr


GRPC_STAMP = r"^GRPC_GENERATED_VERSION = '([^']+)'$"


def test_committed_protobuf_modules_are_fresh(tmp_path):
    # protoc runs in its own process: grpc_tools crashes in a process that has loaded torch.
    from rps_infer.serving.protos import generate

    proc = subprocess.run([sys.executable, "-m", "rps_infer.serving.protos.generate", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    fresh = [Path(line) for line in proc.stdout.split()]
    assert len(fresh) == 6, proc.stdout
    for path in fresh:
        committed = generate.PROTO_DIR / path.name
        # The stamp names the grpcio-tools that ran, not the .proto: a newer tools release in the
        # registry (1.85.4 for 1.85.1) would otherwise call every fresh clone stale.
        assert _unstamped(committed.read_text()) == _unstamped(path.read_text()), \
            f"{committed.name} is stale: run make protos"


def test_committed_grpc_modules_import_with_the_oldest_grpcio_allowed():
    """Generated modules refuse a grpcio older than their stamp: it must be pyproject's floor."""
    import tomllib

    from rps_infer.serving.protos import generate

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    floor = next(d.split(">=")[1] for d in project["project"]["dependencies"] if d.startswith("grpcio>="))
    for path in sorted(generate.PROTO_DIR.glob("*_pb2_grpc.py")):
        stamp = re.search(GRPC_STAMP, path.read_text(), re.M)
        assert stamp and stamp.group(1) == floor, (path.name, stamp and stamp.group(1), floor)


def _unstamped(text: str) -> str:
    return re.sub(GRPC_STAMP, "GRPC_GENERATED_VERSION = ...", text, flags=re.M)


def test_tritonclient_speaks_our_v2_api(server, models, tmp_path):
    """tritonclient's generated `inference` package clashes with ours in one process
    (both register in protobuf's default pool), so it runs in a subprocess."""
    x = realistic_positions(5, 9)
    np.save(tmp_path / "x.npy", x)
    script = f"""
import json, numpy as np, tritonclient.grpc as tc
c = tc.InferenceServerClient({server.target!r})
x = np.load({str(tmp_path / 'x.npy')!r})
meta = c.get_model_metadata("policy", as_json=True)
inp = tc.InferInput("input", list(x.shape), "FP32")
inp.set_data_from_numpy(x)
out = c.infer("policy", [inp], outputs=[tc.InferRequestedOutput("output")]).as_numpy("output")
np.save({str(tmp_path / 'out.npy')!r}, out)
print(json.dumps({{"live": c.is_server_live(), "ready": c.is_model_ready("value"), "meta": meta}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["live"] and result["ready"]
    assert result["meta"]["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": ["-1", "81"]}
    got = np.load(tmp_path / "out.npy")
    assert compare({"output": _expected(models["policy"], x)}, {"output": got}, "fp32")


def test_a_client_generated_from_neural_proto_in_another_process(server, tmp_path):
    """What a game client does: protoc on neural.proto, then call the three RPCs."""
    proto = REPO / "rps_infer" / "serving" / "protos" / "neural.proto"
    protoc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto.parent}", f"--python_out={tmp_path}",
                             f"--grpc_python_out={tmp_path}", str(proto)], capture_output=True, text=True, timeout=120)
    assert protoc.returncode == 0, protoc.stderr
    x = realistic_positions(3, 2)
    script = f"""
import json, sys, grpc
sys.path.insert(0, {str(tmp_path)!r})
import neural_pb2 as pb, neural_pb2_grpc as rpc
stub = rpc.NeuralServiceStub(grpc.insecure_channel({server.target!r}))
x = {x.tolist()!r}
p = stub.Predict(pb.PredictRequest(features=x[0], model_type="policy"), timeout=10)
b = stub.BatchPredict(pb.BatchPredictRequest(inputs=[pb.InputFeatures(features=r) for r in x], model_type="value"),
                      timeout=10)
i = stub.GetModelInfo(pb.ModelInfoRequest(model_type="value"), timeout=10)
print(json.dumps({{"probs": list(p.probabilities), "best": p.best_move, "values": [o.value for o in b.outputs],
                  "info": [i.input_size, i.hidden_size, i.output_size]}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert len(result["probs"]) == 9 and result["best"] == int(np.argmax(result["probs"]))
    assert len(result["values"]) == 3 and result["info"] == [81, 64, 1]


def test_prometheus_metrics_count_requests_errors_latency_and_batches(models):
    import urllib.request

    (metrics_port,) = free_ports()
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]), "--batching",
                       "--metrics-port", str(metrics_port)) as proc, NeuralClient(proc.target) as c:
        c.batch_predict("value", realistic_positions(5))
        with pytest.raises(grpc.RpcError):
            c.predict("dragon", realistic_positions(1)[0])
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert 'rps_infer_requests_total{api="neural",code="OK",method="BatchPredict",model="value",worker="0"} 1.0' in text
    unknown = 'rps_infer_errors_total{api="neural",code="NOT_FOUND",method="Predict",model="unknown",worker="0"} 1.0'
    assert unknown in text
    assert 'rps_infer_request_seconds_count{api="neural",method="BatchPredict",model="value",worker="0"} 1.0' in text
    assert 'rps_infer_batch_rows_sum{model="value",worker="0"} 5.0' in text
    assert "rps_infer_in_flight" in text


def _scrape(port: int) -> str:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def _series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_unknown_model_names_share_one_series(models):
    """200 random model names from a client add no series (they added 3,600 once)."""
    (port,) = free_ports()
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]),
                       "--metrics-port", str(port)) as proc, V2Client(proc.target) as c:
        with pytest.raises(grpc.RpcError):
            c.infer("warm-up-name", {"input": realistic_positions(1)})
        before = _scrape(port)
        for i in range(200):
            with pytest.raises(grpc.RpcError):
                c.infer(f"random-{i}", {"input": realistic_positions(1)})
        after = _scrape(port)
    assert len([line for line in after.splitlines() if line.startswith("rps_infer")]) == \
        len([line for line in before.splitlines() if line.startswith("rps_infer")])
    errors = _series(after, "rps_infer_errors_total")
    assert any('model="unknown"' in line and line.endswith(" 201.0") for line in errors), errors


def test_one_metrics_endpoint_sums_the_workers(models):
    ports = free_ports(2)
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]), "--workers", "2",
                       "--port", str(ports[0]), "--metrics-port", str(ports[1])) as proc:
        for _ in range(6):  # a connection each: spread over the workers
            with NeuralClient(proc.target) as c:
                c.batch_predict("value", realistic_positions(2))
        text = _scrape(ports[1])
    counts = {line.split('worker="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
              for line in _series(text, "rps_infer_requests_total") if 'method="BatchPredict"' in line}
    assert sum(counts.values()) == 6.0 and set(counts) <= {"0", "1"}, counts


@pytest.mark.parametrize("backend", ["pyt", "tf"])
def test_serve_on_framework_backends(backend):
    """The zoo's .pt / .keras artifacts behind the same APIs, equal to in-process inference."""
    x = realistic_positions(4, 3)
    with ServerProcess("--backend", backend) as proc, NeuralClient(proc.target) as c, V2Client(proc.target) as v:
        got = c.batch_predict("policy", x)
        meta = v.metadata("policy")
        info = c.model_info("value")
    from rps_infer import zoo

    want = _expected(zoo.load_zoo()["policy"].onnx_path, x)
    assert compare({"output": want}, {"output": got}, "fp32")
    assert meta.platform == {"pyt": "pytorch_eager", "tf": "tensorflow_keras"}[backend]  # the zoo's .pt / .keras
    assert info.framework.startswith({"pyt": "torch", "tf": "tensorflow"}[backend])


def test_serve_refuses_an_unavailable_device_with_a_clear_error():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    proc = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--port", "0", "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "CUDAExecutionProvider" in proc.stderr and "Traceback" not in proc.stderr


def test_unet_frames_travel_as_raw_bytes_over_v2(built_zoo):
    from rps_infer.bench.loadgen.generator import entry_payload

    entry = built_zoo["unet-ci"]
    frames = entry_payload(entry, 8)  # 8 frames of 6x128x128 and their audio
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--model", f"unet-ci={entry.onnx_path}") as proc, V2Client(proc.target) as c:
        meta = c.metadata("unet-ci")
        got = c.infer("unet-ci", frames)["output"]
    assert [t.name for t in meta.inputs] == ["image", "audio"] and list(meta.outputs[0].shape) == [-1, 3, 128, 128]
    want = entry.backend("onnxrt-cpu").infer(frames)["output"]
    assert got.shape == (8, 3, 128, 128)
    assert compare({"output": want}, {"output": got}, "image-fp32")


def test_an_idle_server_exits_at_once_on_sigterm(models):
    """Nothing in flight, a client still connected, --grace 30: the drain has nothing to wait for."""
    with ServerProcess("--policy", str(models["policy"]), "--value", str(models["value"]), "--grace", "30",
                       "--http-port", "0") as proc, NeuralClient(proc.target) as c:
        c.predict_value(realistic_positions(1)[0])
        began = time.monotonic()
        assert proc.terminate() == 0
        assert time.monotonic() - began < 3.0
