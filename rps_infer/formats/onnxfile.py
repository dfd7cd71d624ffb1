"""The ONNX format as a model file: what a file says about itself (rps_infer metadata)."""

from __future__ import annotations

from pathlib import Path

import onnx

from rps_infer.errors import ModelFormatError

METADATA_PREFIX = "rps_infer."


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``rps_infer.*`` metadata of an ONNX file (without the prefix); checks the file loads."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "<file>", "an existing .onnx file", "no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelFormatError(path, "<file>", "an ONNX model (protobuf)", str(exc)[:200]) from None
    if not model.graph.node and not model.graph.output:
        raise ModelFormatError(path, "graph", "a graph with outputs", "an empty graph")
    return {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props
            if p.key.startswith(METADATA_PREFIX)}
