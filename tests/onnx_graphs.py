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


def mlp_graph(w: MLPWeights, path: Path, *, bug: str | None = None, batch: int | str = "batch") -> Path:
    """Write ``w`` as an ONNX MLP. ``bug`` plants one export mistake:

    - ``no-sigmoid``: the value head's final sigmoid is dropped;
    - ``log-softmax``: LogSoftmax in place of Softmax;
    - ``transposed-hidden``: the hidden weights read in the wrong order (a reshape where a transpose belongs).

    ``batch``: the first dim (a name: dynamic; a number: fixed, as some exports write it).
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
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, w.input_size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, w.output_size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _save(nodes, inputs, outputs, inits, path: Path) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def odd_batch_failure_graph(path: Path) -> Path:
    """input [batch, 3] -> output [batch, 3]; ONNX Runtime fails at run time when batch is odd
    (a Reshape to [2, -1]): a genuine backend fault that input validation cannot see."""
    shape_a = numpy_helper.from_array(np.array([2, -1], np.int64), "shape_a")
    shape_b = numpy_helper.from_array(np.array([-1, 3], np.int64), "shape_b")
    nodes = [helper.make_node("Reshape", ["input", "shape_a"], ["pairs"]),
             helper.make_node("Reshape", ["pairs", "shape_b"], ["output"])]
    return _save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
                 [shape_a, shape_b], path)


def slow_graph(path: Path, size: int = 1024, repeats: int = 40) -> Path:
    """input [batch, 4] -> output [1]: ``repeats`` dense size x size MatMuls that depend on
    the input (so nothing is constant-folded); a few hundred ms per call here."""
    w = numpy_helper.from_array((np.eye(size) * 0.5).astype(np.float32), "w")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
             helper.make_node("Mul", ["total", "zero"], ["nothing"]),
             helper.make_node("Add", ["w", "nothing"], ["m0"])]
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [f"m{i}", "w"], [f"m{i + 1}"]))
    nodes.append(helper.make_node("ReduceSum", [f"m{repeats}"], ["output"], keepdims=0, axes=None))
    return _save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, [])], [w, zero], path)


def wide_graph(path: Path, width: int = 200_000) -> Path:
    """input [batch, 4] -> output [batch, width] (each row's sum, repeated): a small request
    with a large answer, to test the server's send limit."""
    shape = numpy_helper.from_array(np.array([1, width], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("ReduceSum", ["input", "axes"], ["total"], keepdims=1),
             helper.make_node("Expand", ["total", "shape"], ["output"])]
    return _save(nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", width])],
                 [shape, axes], path)
