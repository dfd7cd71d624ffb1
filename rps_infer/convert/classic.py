"""Classical classifiers (scikit-learn, XGBoost) to ONNX.

ONNX graphs take ``input`` float32 ``[N, 64]`` and give ``label`` int64 ``[N]`` and
``probabilities`` float32 ``[N, classes]`` (tensors, no ZipMap): skl2onnx for
scikit-learn, onnxmltools for XGBoost (which converts only up to opset 15 here). The
native files are :mod:`rps_infer.formats.native`.
"""

from __future__ import annotations

from rps_infer.errors import ModelFormatError
from rps_infer.formats.native import is_xgboost

SKLEARN_OPSET = {"": 17, "ai.onnx.ml": 3}
XGBOOST_OPSET = 15
ONNX_IR_VERSION = 8  # what opset 17 needs; onnxruntime refuses newer IR than it knows
OUTPUTS = ("label", "probabilities")


def to_onnx(model, features: int, metadata: dict[str, str] | None = None):
    """The ONNX graph of a fitted classifier (an ``onnx.ModelProto``)."""
    import onnx

    if is_xgboost(model):
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = convert_xgboost(model, initial_types=[("input", FloatTensorType([None, features]))],
                                target_opset=XGBOOST_OPSET)
    else:
        from skl2onnx import to_onnx as skl_to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        final = model.steps[-1][1] if hasattr(model, "steps") else model
        proto = skl_to_onnx(model, initial_types=[("input", FloatTensorType([None, features]))],
                            options={id(final): {"zipmap": False}}, target_opset=SKLEARN_OPSET)
    names = [o.name for o in proto.graph.output]
    if names != list(OUTPUTS):
        raise ModelFormatError("<converted graph>", "outputs", list(OUTPUTS), names)
    proto.ir_version = min(proto.ir_version, ONNX_IR_VERSION)
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    return proto
