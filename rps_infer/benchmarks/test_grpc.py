"""End-to-end latency over gRPC against a real `rps-infer serve` subprocess on a free port.

Predict b1, BatchPredict b64 (value), ModelInfer b1 and b64 (raw tensors; the RPS
models, a U-Net frame, the digits classifiers at b1 and b64), gated with the gRPC
threshold; the same calls against a bare grpcio echo server are reference cases (the
transport floor; reported, never failed). The client runs at concurrency 1 in the
process that times (load at higher concurrency is `rps-infer bench --target`). Every
service answer is checked against in-process inference before timing.
"""

from __future__ import annotations

import pytest

from rps_infer.bench.loadgen.generator import LoadSpec
from rps_infer.bench.pytest_plugin import run_case

# unet-ci b1: one 6x128x128 frame + audio (400 kB) in, 3x128x128 out: the transport cost of a frame.
# digits-*: the classifiers' ModelInfer round trip (label INT64 + probabilities FP32 back).
CASES = [("neural", "policy", 1), ("neural", "value", 64), ("v2", "policy", 1), ("v2", "value", 64),
         ("v2", "unet-ci", 1), *(("v2", f"digits-{m}", b) for m in ("logreg", "rf", "xgb") for b in (1, 64))]
IDS = [f"{api}-{LoadSpec('', api, model, batch, 1, 0).rpc}-{model}-b{batch}" for api, model, batch in CASES]


@pytest.mark.parametrize(("api", "model", "batch"), CASES, ids=IDS)
@pytest.mark.parametrize("target", ["service", "echo"])
def test_grpc(benchmark, request, api, model, batch, target):
    description = {"kind": "grpc", "server": target, "api": api, "model": model, "batch": batch}
    run_case(benchmark, request, description, group="grpc" if target == "service" else "reference", batch=batch)
