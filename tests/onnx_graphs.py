"""Hand-built ONNX graphs of the RPS MLP, correct and with the bugs real exports have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rps_infer.nets.mlp import MLPWeights

# onnx.helper.make_model writes the newest IR version, which onnxruntime may refuse.
IR_VERSION = 10
OPSET = 17


def mlp_graph(w: MLPWeights, path: Path, *, bug: str | None = None) -> Path:
    """Write ``w`` as an ONNX MLP. ``bug`` plants one export mistake:

    - ``no-sigmoid``: the value head's final sigmoid is dropped;
    - ``log-softmax``: LogSoftmax in place of Softmax;
    - ``transposed-hidden``: the hidden weights read in the wrong order (a reshape where a transpose belongs).
    """
    w1t = w.w1.T.astype(np.float32)  # [in, hidden] for MatMul
    if bug == "transposed-hidden":
        w1t = w.w1.astype(np.float32).reshape(w.input_size, w.hidden_size)
    inits = [
        numpy_helper.from_array(w1t, "w1t"),
        numpy_helper.from_array(w.b1.astype(np.float32), "b1"),
        numpy_helper.from_array(w.w2.T.astype(np.float32), "w2t"),
        numpy_helper.from_array(w.b2.astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "w1t"], ["mm1"]),
        helper.make_node("Add", ["mm1", "b1"], ["pre1"]),
        helper.make_node("Relu", ["pre1"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2t"], ["mm2"]),
        helper.make_node("Add", ["mm2", "b2"], ["logits"]),
    ]
    if w.kind == "value":
        last = "Identity" if bug == "no-sigmoid" else "Sigmoid"
        nodes.append(helper.make_node(last, ["logits"], ["output"]))
    else:
        op = "LogSoftmax" if bug == "log-softmax" else "Softmax"
        nodes.append(helper.make_node(op, ["logits"], ["output"], axis=-1))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", w.input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", w.output_size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
