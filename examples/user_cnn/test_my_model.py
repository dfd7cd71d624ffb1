"""A user's test file: parity of the ONNX export with the PyTorch checkpoint, and a gated latency case."""

import numpy as np

from rps_infer import ModelHints

HINTS = ModelHints(torch_model="mynet:Net", torch_kwargs={"width": 16},
                   input_shapes={"image": (1, 6, 64, 64), "audio": (1, 32, 16, 16)})
MINE = dict(np.load("mine.npz"))


def test_the_onnx_export_computes_the_same_function(rps_parity):
    rps_parity("checkpoint.pth.tar", "model.onnx", inputs=MINE, hints=HINTS)


def test_onnx_latency_at_batch_1(rps_benchmark):
    rps_benchmark("model.onnx", batch=1)
