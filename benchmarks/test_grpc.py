"""End-to-end latency over gRPC against a real `rps-infer serve` subprocess on a free port.

Predict b1, BatchPredict b64 (value), ModelInfer b1 and b64 (raw tensors; the RPS
models, a U-Net frame, the digits classifiers at b1 and b64), gated with
the gRPC threshold; the same calls against a bare grpcio echo server are reference
cases (the transport floor; reported, never failed). The client runs in this process
at concurrency 1; load at higher concurrency is `rps-infer bench --target`. Every
timed call's answer is checked against in-process inference first.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.conftest import run_case
from rps_infer.bench.load import LoadSpec, make_call, payload
from rps_infer.client import decode_response
from rps_infer.compare import compare
from rps_infer.serving.launch import ServerProcess, echo_command, serve_command
from rps_infer.serving.protos import neural_pb2

# unet-ci b1: one 6x128x128 frame + audio (400 kB) in, 3x128x128 out: the transport cost of a frame.
# digits-*: the classifiers' ModelInfer round trip (label INT64 + probabilities FP32 back).
CASES = [("neural", "policy", 1), ("neural", "value", 64), ("v2", "policy", 1), ("v2", "value", 64),
         ("v2", "unet-ci", 1), *(("v2", f"digits-{m}", b) for m in ("logreg", "rf", "xgb") for b in (1, 64))]
CLASSIFIERS = ("digits-logreg", "digits-rf", "digits-xgb")
IDS = [f"{api}-{LoadSpec('', api, model, batch, 1, 0).rpc}-{model}-b{batch}" for api, model, batch in CASES]


@pytest.fixture(scope="module")
def servers(built_zoo):
    """The service on the zoo's ONNX models, and the echo server."""
    zoo = built_zoo
    with ServerProcess(serve_command("--policy", str(zoo["policy"].onnx_path), "--value",
                                     str(zoo["value"].onnx_path), "--model",
                                     f"unet-ci={zoo['unet-ci'].onnx_path}",
                                     *(a for m in CLASSIFIERS for a in ("--model", f"{m}={zoo[m].onnx_path}")))) \
            as service, \
            ServerProcess(echo_command()) as echo:
        yield {"service": service, "echo": echo}


def _outputs(api: str, batch: int, response) -> dict[str, np.ndarray]:
    if api == "v2":
        return decode_response(response)
    if batch == 1:
        response = neural_pb2.BatchPredictResponse(outputs=[response])
    if response.outputs[0].probabilities:
        return {"output": np.array([o.probabilities for o in response.outputs], np.float32)}
    return {"output": np.array([[o.value] for o in response.outputs], np.float32)}


@pytest.mark.parametrize(("api", "model", "batch"), CASES, ids=IDS)
@pytest.mark.parametrize("target", ["service", "echo"])
def test_grpc(benchmark, request, servers, built_zoo, api, model, batch, target):
    spec = LoadSpec(servers[target].target, api, model, batch, 1, 0)
    call, message, channel = make_call(spec)
    try:
        answer = call(message, timeout=30)
        if target == "service":
            entry = built_zoo[model]
            want = entry.backend("onnxrt-cpu").infer(payload(model, batch))
            assert compare(want, _outputs(api, batch, answer), entry.tolerance)
        run_case(benchmark, request, lambda: call(message, timeout=30),
                 group="grpc" if target == "service" else "reference", batch=batch,
                 extra_info={"backend": f"grpc-{target}", "api": api, "rpc": spec.rpc, "model": model})
    finally:
        channel.close()
