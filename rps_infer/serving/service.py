"""The two thin gRPC servicers in front of the served models (:mod:`rps_infer.serving.models`).

The servicers decode a request, call ``model.infer`` and encode the answer; the registry
checks the request (the same checks as the REST API's); errors become status codes in
:mod:`rps_infer.serving.status`.
"""

from __future__ import annotations

import numpy as np

from rps_infer.errors import InvalidRequestError, ModelNotFoundError
from rps_infer.serving import codecs, wire
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.models import ModelRegistry, ServedModel, platform
from rps_infer.serving.protos import neural_pb2, predict_v2_pb2
from rps_infer.serving.status import label_model, rpc
from rps_infer.version import VERSION


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
    """The Open Inference Protocol (KServe v2) over every served model. Methods take bytes."""

    def __init__(self, registry: ModelRegistry, metrics: NullMetrics | None = None) -> None:
        self.registry = registry
        self.metrics = metrics or NullMetrics()

    @rpc("v2", returns=predict_v2_pb2.ServerLiveResponse)
    def ServerLive(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerLiveRequest, data)
        return predict_v2_pb2.ServerLiveResponse(live=True)

    @rpc("v2", returns=predict_v2_pb2.ServerReadyResponse)
    def ServerReady(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerReadyRequest, data)
        return predict_v2_pb2.ServerReadyResponse(ready=self.registry.ready())

    @rpc("v2", returns=predict_v2_pb2.ModelReadyResponse)
    def ModelReady(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelReadyRequest, data)
        label_model(request.name)
        model = self.registry.lookup(request.name, request.version)
        return predict_v2_pb2.ModelReadyResponse(ready=model.ready and not self.registry.shutting_down)

    @rpc("v2", returns=predict_v2_pb2.ServerMetadataResponse)
    def ServerMetadata(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerMetadataRequest, data)
        return predict_v2_pb2.ServerMetadataResponse(name="rps_infer", version=VERSION, extensions=[])

    @rpc("v2", returns=predict_v2_pb2.ModelMetadataResponse)
    def ModelMetadata(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelMetadataRequest, data)
        label_model(request.name)
        model = self.registry.get(request.name, request.version)
        meta = predict_v2_pb2.ModelMetadataResponse.TensorMetadata

        def tensors(specs):
            return [meta(name=s.name, datatype=codecs.datatype_of(s.dtype),
                         shape=[-1 if d is None else d for d in s.shape]) for s in specs]

        versions = self.registry.metadata(model)["versions"]
        return predict_v2_pb2.ModelMetadataResponse(
            name=model.name, versions=versions, platform=platform(model.backend),
            inputs=tensors(model.input_specs), outputs=tensors(model.output_specs))

    @rpc("v2", returns=predict_v2_pb2.ModelInferResponse)
    def ModelInfer(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelInferRequest, data)
        label_model(request.model_name)
        model = self.registry.get(request.model_name, request.model_version)
        feeds = self._decode(model, request)
        wanted = self.registry.check_outputs(model, [o.name for o in request.outputs])
        outputs = model.infer(feeds)
        response = predict_v2_pb2.ModelInferResponse(model_name=model.name, model_version=model.version,
                                                     id=request.id)
        raw = bool(request.raw_input_contents)
        for name in wanted:
            array = np.asarray(outputs[name])
            tensor = response.outputs.add(name=name, datatype=codecs.datatype_of(array.dtype), shape=array.shape)
            if raw:
                response.raw_output_contents.append(codecs.to_raw(array))
            else:
                codecs.encode_contents(array, tensor.contents)
        return response

    def _decode(self, model: ServedModel, request) -> dict[str, np.ndarray]:
        registry = self.registry
        registry.check_inputs(model, [t.name for t in request.inputs])
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidRequestError(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
        feeds = {}
        for i, tensor in enumerate(request.inputs):
            shape = registry.check_input(model, tensor.name, tensor.datatype, tensor.shape)
            if raw:
                array = codecs.decode_raw(tensor.name, tensor.datatype, shape, raw[i])
            else:
                array = codecs.decode_contents(tensor.name, tensor.datatype, shape, tensor.contents)
            registry.check_finite(tensor.name, array)
            feeds[tensor.name] = array
        registry.check_batch(next(iter(feeds.values())).shape[0] if feeds else 0)
        return feeds


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
