"""The ONNX format as a model file: what a file says about itself (rps_infer metadata,
inputs and outputs), read without a runtime."""

from __future__ import annotations

from pathlib import Path

import onnx

from rps_infer.errors import ModelFormatError
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
