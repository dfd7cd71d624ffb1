"""The two thin gRPC servicers in front of the served models (:mod:`rps_infer.serving.models`).

NeuralService decodes a request, calls ``model.infer`` and encodes the answer, the registry
checking it; the v2 servicer only converts messages for the one v2 data plane
(:mod:`rps_infer.serving.dataplane`), which the REST API uses too. Errors become status codes
in :mod:`rps_infer.serving.status`.
"""

from __future__ import annotations

import numpy as np

from rps_infer.errors import InvalidRequestError, ModelNotFoundError
from rps_infer.serving import codecs, wire
from rps_infer.serving.dataplane import DataPlane, InferRequest, InputTensor
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.models import ModelRegistry, ServedModel
from rps_infer.serving.protos import neural_pb2, predict_v2_pb2
from rps_infer.serving.status import label_model, rpc


class NeuralServicer:
    """NeuralService: Predict, BatchPredict, GetModelInfo for the policy and value models.

    Methods take the request's bytes; Predict and BatchPredict decode and encode with
    :mod:`rps_infer.serving.wire` (numpy straight from and to the wire).
    """

    def __init__(self, registry: ModelRegistry, metrics: NullMetrics | None = None) -> None:
        self.registry = registry
        self.metrics = metrics or NullMetrics()

    def _model(self, model_type: str) -> ServedModel:
        label_model(model_type)
        model = self.registry.get(model_type)
        if model.kind not in ("policy", "value"):
            raise ModelNotFoundError(f"model_type must name a policy or value model, got {model_type!r}")
        return model

    def _run(self, model: ServedModel, x: np.ndarray | list[np.ndarray]) -> np.ndarray:
        width = model.width
        if isinstance(x, list):  # inputs of different lengths: name the first wrong one
            bad = next(i for i, r in enumerate(x) if len(r) != width)
            raise InvalidRequestError(f"expected {width} features per position, got {len(x[bad])} (input {bad})")
        if x.shape[1] != width:
            raise InvalidRequestError(f"expected {width} features per position, got {x.shape[1]}")
        self.registry.check_finite("features", x)
        return model.infer({model.first_input: x})[model.first_output]

    @rpc("neural", returns=neural_pb2.PredictResponse)
    def Predict(self, data: bytes, context):  # noqa: N802 - gRPC method name
        x, model_type = wire.decode_predict(data)
        model = self._model(model_type)
        out = self._run(model, x)[0].tolist()
        if model.kind == "value":
            return neural_pb2.PredictResponse(value=out[0])
        # max over a 9-element list: cheaper than numpy's argmax on a cold path
        return neural_pb2.PredictResponse(probabilities=out, best_move=max(range(len(out)), key=out.__getitem__))

    @rpc("neural", returns=bytes)
    def BatchPredict(self, data: bytes, context):  # noqa: N802
        x, model_type = wire.decode_batch(data)
        model = self._model(model_type)
        self.registry.check_batch(len(x))
        out = self._run(model, x)
        if model.kind == "value":
            return wire.encode_values(out[:, 0])
        return wire.encode_policies(out, np.argmax(out, axis=1))

    @rpc("neural", returns=neural_pb2.ModelInfoResponse)
    def GetModelInfo(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(neural_pb2.ModelInfoRequest, data)
        model = self._model(request.model_type)
        info = model.backend.describe()
        return neural_pb2.ModelInfoResponse(
            input_size=model.width, hidden_size=model.hidden_size,
            output_size=model.output_specs[0].shape[1], device=model.backend.device,
            framework=f"{info.get('framework')} {info.get('version')}")


class InferenceServicer:
    """The Open Inference Protocol (KServe v2) over gRPC: converts messages to and from the
    :class:`~rps_infer.serving.dataplane.DataPlane`'s objects, nothing more. Methods take bytes."""

    def __init__(self, registry: ModelRegistry, metrics: NullMetrics | None = None) -> None:
        self.plane = DataPlane(registry)
        self.metrics = metrics or NullMetrics()

    @rpc("v2", returns=predict_v2_pb2.ServerLiveResponse)
    def ServerLive(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerLiveRequest, data)
        return predict_v2_pb2.ServerLiveResponse(live=self.plane.live())

    @rpc("v2", returns=predict_v2_pb2.ServerReadyResponse)
    def ServerReady(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerReadyRequest, data)
        return predict_v2_pb2.ServerReadyResponse(ready=self.plane.ready())

    @rpc("v2", returns=predict_v2_pb2.ModelReadyResponse)
    def ModelReady(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelReadyRequest, data)
        return predict_v2_pb2.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version))

    @rpc("v2", returns=predict_v2_pb2.ServerMetadataResponse)
    def ServerMetadata(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerMetadataRequest, data)
        return predict_v2_pb2.ServerMetadataResponse(**self.plane.server_metadata())

    @rpc("v2", returns=predict_v2_pb2.ModelMetadataResponse)
    def ModelMetadata(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelMetadataRequest, data)
        meta = self.plane.model_metadata(request.name, request.version)
        tensor = predict_v2_pb2.ModelMetadataResponse.TensorMetadata
        return predict_v2_pb2.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]], outputs=[tensor(**t) for t in meta["outputs"]])

    @rpc("v2", returns=predict_v2_pb2.ModelInferResponse)
    def ModelInfer(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelInferRequest, data)
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidRequestError(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
        inputs = [InputTensor(t.name, t.datatype, t.shape, raw=raw[i] if raw else None,
                              contents=t.contents if t.HasField("contents") or not raw else None)
                  for i, t in enumerate(request.inputs)]
        answer = self.plane.infer(InferRequest(request.model_name, request.model_version, inputs,
                                               [o.name for o in request.outputs], request.id))
        response = predict_v2_pb2.ModelInferResponse(model_name=answer.model_name,
                                                     model_version=answer.model_version, id=answer.id)
        for out in answer.outputs:  # raw answers to raw requests, as Triton does
            tensor = response.outputs.add(name=out.name, datatype=out.datatype, shape=out.array.shape)
            if raw:
                response.raw_output_contents.append(codecs.to_raw(out.array))
            else:
                codecs.encode_contents(out.array, tensor.contents)
        return response


def method_handlers(servicer) -> dict:
    """A grpc handler for every public method of ``servicer`` (bytes in, a message or bytes out),
    to register with ``server.add_registered_method_handlers`` (grpcio's faster path: the
    method is matched in the C core, not by a Python lookup per call).

    Requests are not deserialised by grpcio, so every decoding error passes through the one
    error-to-status map (INVALID_ARGUMENT, not grpcio's default INTERNAL).
    """
    import grpc

    def serializer(name: str):
        returns = getattr(getattr(type(servicer), name), "returns", None)
        return (lambda r: r) if returns is bytes else returns.SerializeToString if returns else _serialize

    return {name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name), response_serializer=serializer(name))
            for name in dir(type(servicer)) if name[:1].isupper()}


def _serialize(response) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()
