"""The ONNX format as a model file, read without a runtime: rps_infer metadata, inputs and
outputs with their dims as written, what ``info`` shows (as Polygraphy's ``inspect model``
does), and the weights of a graph that is the RPS MLP (so an ONNX file can be a parity
reference layer by layer, and be rebuilt in PyTorch or Keras). External data works."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import MLPWeights
from rps_infer.tensors import TensorSpec

METADATA_PREFIX = "rps_infer."


def load(path: str | Path) -> onnx.ModelProto:
    """The graph (external data left on disk), or a :class:`ModelFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing .onnx file", "no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelFormatError(path, "<file>", "an ONNX model (protobuf)", str(exc)[:200]) from None
    if not model.graph.node and not model.graph.output:
        raise ModelFormatError(path, "graph", "a graph with outputs", "an empty graph")
    return model


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``rps_infer.*`` metadata of an ONNX file (without the prefix); checks the file loads."""
    return {p.key[len(METADATA_PREFIX):]: p.value for p in load(path).metadata_props
            if p.key.startswith(METADATA_PREFIX)}


def io_specs(path: str | Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's inputs (initialisers excluded) and outputs, with dims as written."""
    graph = load(path).graph
    initializers = {i.name for i in graph.initializer}

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = tuple(tensor.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return TensorSpec(value.name, dtype, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims),
                          tuple(d.dim_param or None for d in dims))

    return (tuple(spec(v) for v in graph.input if v.name not in initializers),
            tuple(spec(v) for v in graph.output))



def declarations(path: Path) -> tuple[MLPWeights | None, dict[str, str], None]:
    """(MLP weights if the graph is the RPS MLP, rps_infer metadata, no variant)."""
    model = load(path)
    metadata = {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props
                if p.key.startswith(METADATA_PREFIX)}
    return mlp_weights(model, path.parent), metadata, None


def _initializer(model: onnx.ModelProto, base_dir: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i, base_dir=str(base_dir)) for i in model.graph.initializer}


def mlp_weights(model: onnx.ModelProto, base_dir: Path) -> MLPWeights | None:
    """The weights of a graph that computes Dense -> ReLU -> Dense -> Softmax|Sigmoid in one
    chain (Gemm, or MatMul + Add, as PyTorch's and Keras's exporters write it), else None."""
    nodes = [n for n in model.graph.node if n.op_type != "Identity"]
    if not 4 <= len(nodes) <= 8 or len(model.graph.input) - len(model.graph.initializer) > 1:
        return None
    values = _initializer(model, base_dir)
    if not _one_chain(model.graph, nodes, values):
        return None
    layers, activations = [], []
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op_type in ("Relu", "Softmax", "Sigmoid"):
            activations.append(node.op_type)
            i += 1
            continue
        step = _linear(node, nodes[i + 1] if i + 1 < len(nodes) else None, values)
        if step is None:
            return None
        layers.append(step[:2])
        i += step[2]
    if len(layers) != 2 or activations[:1] != ["Relu"] or len(activations) != 2:
        return None
    (w1, b1), (w2, b2) = layers
    kind = "policy" if activations[1] == "Softmax" else "value"
    if w1.shape[0] != w2.shape[1] or (kind == "value" and w2.shape[0] != 1):
        return None
    return MLPWeights(kind, w1, b1, w2, b2)


def _one_chain(graph, nodes, values) -> bool:
    """Each node reads the previous node's output (through Identity nodes), the first the graph's input."""
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}

    def source(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    previous = next(i.name for i in graph.input if i.name not in values)
    for node in nodes:
        data = [source(n) for n in node.input if n and n not in values]
        if data != [previous]:
            return False
        previous = node.output[0]
    return bool(graph.output) and source(graph.output[0].name) in (previous, *alias)


def _linear(node, following, values) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(W [out, in], b, nodes used) of a Gemm, or of a MatMul (+ Add) with constant weights."""
    weight = values.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None or weight.ndim != 2:
        return None
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            return None
        w = weight if attrs.get("transB", 0) else weight.T
        bias = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
        return w.astype(np.float64), np.asarray(bias, np.float64).reshape(-1), 1
    if node.op_type != "MatMul":
        return None
    w = weight.T
    if following is not None and following.op_type == "Add":
        bias = next((values[n] for n in following.input if n in values), None)
        if bias is not None:
            return w.astype(np.float64), np.asarray(bias, np.float64).reshape(-1), 2
    return w.astype(np.float64), np.zeros(w.shape[0]), 1


def inspect(path: str | Path) -> dict:
    """What Polygraphy's ``inspect model`` shows: opsets, IR version, producer, op-type counts,
    initialisers and parameters, inputs and outputs as written, and the checker's and shape
    inference's verdicts."""
    path = Path(path)
    model = load(path)
    graph = model.graph
    params = sum(int(np.prod(i.dims)) for i in graph.initializer)
    inputs, outputs = io_specs(path)
    return {"opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
            "ir_version": model.ir_version, "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "op_types": dict(Counter(n.op_type for n in graph.node).most_common()), "nodes": len(graph.node),
            "initializers": len(graph.initializer), "parameters": params,
            "external_data": any(i.data_location == onnx.TensorProto.EXTERNAL for i in graph.initializer),
            "inputs": [s.describe() for s in inputs], "outputs": [s.describe() for s in outputs],
            "checker": _verdict(lambda: onnx.checker.check_model(str(path))),
            "shape_inference": _verdict(lambda: _infer_shapes(path))}


def _infer_shapes(path: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        onnx.shape_inference.infer_shapes_path(str(path), str(Path(tmp) / "inferred.onnx"), strict_mode=True)


def _verdict(check) -> str:
    try:
        check()
        return "ok"
    except Exception as exc:  # the checker's and shape inference's own error types
        return f"FAILED: {str(exc).splitlines()[0][:200]}"
