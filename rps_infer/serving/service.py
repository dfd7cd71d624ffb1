"""The models a server serves, and the two thin servicers in front of them.

:class:`ModelRegistry` holds plain :class:`ServedModel` objects (a backend, its
batcher, what the APIs report about it). The servicers decode a request, call
``model.infer`` and encode the answer; errors become status codes in
:mod:`rps_infer.serving.status`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import rps_infer.defaults as defaults
from rps_infer.backends.base import Backend
from rps_infer.errors import InvalidRequestError, ModelNotFoundError, ModelNotReadyError
from rps_infer.serving import codecs, wire
from rps_infer.serving.batching import AdaptiveBatcher
from rps_infer.serving.config import Batching
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.protos import neural_pb2, predict_v2_pb2
from rps_infer.serving.status import label_model, rpc
from rps_infer.version import VERSION

MAX_ELEMENTS = 1 << 28  # refuse shapes claiming more elements than this before allocating


@dataclass
class ServedModel:
    """One model as the server sees it. ``error`` is set when it failed to load.

    The backend's specs are read once here: the handlers use them on every request."""

    name: str
    backend: Backend | None
    kind: str | None = None  # policy / value for the NeuralService API
    hidden_size: int = -1
    error: str | None = None
    batcher: AdaptiveBatcher | None = field(default=None, repr=False)
    version: str = "1"
    batching: Batching | None = None

    def __post_init__(self) -> None:
        if self.backend is not None:
            self.input_specs = self.backend.input_specs
            self.specs_by_name = {s.name: s for s in self.input_specs}
            self.datatypes = {s.name: _datatype(s.dtype) for s in self.input_specs}
            self.output_specs = self.backend.output_specs
            self.output_names = tuple(s.name for s in self.output_specs)
            self.first_input, self.first_output = self.input_specs[0].name, self.output_names[0]
            shape = self.input_specs[0].shape
            self.width = shape[1] if len(shape) > 1 else None
            self.fixed_batch = shape[0] if shape else None  # the model takes only this many rows

    @property
    def ready(self) -> bool:
        """Loaded and usable."""
        return self.error is None and self.backend is not None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Through the batcher when batching is on."""
        if self.batcher is not None:
            return self.batcher.infer(feeds)
        return self.backend.infer(feeds)


@dataclass
class ServingOptions:
    """Request limits shared by both APIs."""

    max_batch_size: int = defaults.MAX_BATCH_SIZE
    allow_nonfinite: bool = False


class ModelRegistry:
    """Served models by name; also says whether the server as a whole is ready."""

    def __init__(self, models: list[ServedModel], options: ServingOptions) -> None:
        self.models = {m.name: m for m in models}
        self.options = options
        self.shutting_down = False

    def get(self, name: str) -> ServedModel:
        """A ready model, or NOT_FOUND / UNAVAILABLE errors."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFoundError(f"no model {name!r}; served: {sorted(self.models)}")
        if not model.ready:
            raise ModelNotReadyError(f"model {name!r} is not ready: {model.error}")
        return model

    def ready(self) -> bool:
        """Every model loaded and not shutting down."""
        return not self.shutting_down and all(m.ready for m in self.models.values())

    def check_batch(self, rows: int) -> None:
        """Refuse empty batches and batches above --max-batch-size."""
        if rows == 0:
            raise InvalidRequestError("empty batch: expected at least 1 input")
        if rows > self.options.max_batch_size:
            raise InvalidRequestError(f"batch of {rows} exceeds the server's --max-batch-size "
                                      f"{self.options.max_batch_size}")

    def check_finite(self, name: str, array: np.ndarray) -> None:
        """Refuse NaN/Inf in float inputs unless --allow-nonfinite."""
        # One reduction: a float64 sum of float32 values is finite exactly when every value is.
        if (not self.options.allow_nonfinite and array.dtype.kind == "f"
                and not math.isfinite(array.sum(dtype=np.float64))):
            raise InvalidRequestError(f"input {name!r} contains NaN or Inf (start the server with "
                                      "--allow-nonfinite to accept them)")


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
        model = self.registry.models.get(request.name)
        if model is None:
            raise ModelNotFoundError(f"no model {request.name!r}; served: {sorted(self.registry.models)}")
        return predict_v2_pb2.ModelReadyResponse(ready=model.ready and not self.registry.shutting_down)

    @rpc("v2", returns=predict_v2_pb2.ServerMetadataResponse)
    def ServerMetadata(self, data: bytes, context):  # noqa: N802
        wire.parse_message(predict_v2_pb2.ServerMetadataRequest, data)
        return predict_v2_pb2.ServerMetadataResponse(name="rps_infer", version=VERSION, extensions=[])

    @rpc("v2", returns=predict_v2_pb2.ModelMetadataResponse)
    def ModelMetadata(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelMetadataRequest, data)
        label_model(request.name)
        model = self.registry.get(request.name)
        meta = predict_v2_pb2.ModelMetadataResponse.TensorMetadata

        def tensors(specs):
            return [meta(name=s.name, datatype=codecs.datatype_of(s.dtype),
                         shape=[-1 if d is None else d for d in s.shape]) for s in specs]

        return predict_v2_pb2.ModelMetadataResponse(
            name=model.name, versions=["1"], platform=_platform(model.backend),
            inputs=tensors(model.input_specs), outputs=tensors(model.output_specs))

    @rpc("v2", returns=predict_v2_pb2.ModelInferResponse)
    def ModelInfer(self, data: bytes, context):  # noqa: N802
        request = wire.parse_message(predict_v2_pb2.ModelInferRequest, data)
        label_model(request.model_name)
        model = self.registry.get(request.model_name)
        feeds = self._decode(model, request)
        wanted = [o.name for o in request.outputs] or list(model.output_names)
        unknown = [n for n in wanted if n not in model.output_names]
        if unknown:
            have = list(model.output_names)
            raise InvalidRequestError(f"unknown output(s) {unknown}; {model.name} has {have}")
        outputs = model.infer(feeds)
        response = predict_v2_pb2.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
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
        specs = model.specs_by_name
        names = [t.name for t in request.inputs]
        if sorted(names) != sorted(specs):
            raise InvalidRequestError(f"model {model.name!r} expects inputs {sorted(specs)}, got {names}")
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidRequestError(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
        feeds = {}
        for i, tensor in enumerate(request.inputs):
            spec = specs[tensor.name]
            shape = codecs.check_shape(tensor.name, tensor.shape, MAX_ELEMENTS)
            want = model.datatypes[tensor.name]
            if tensor.datatype != want:
                raise InvalidRequestError(f"input {tensor.name!r}: expected datatype {want}, got {tensor.datatype!r}")
            if len(shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, shape,
                                                                                          strict=True)):
                expected = [-1 if d is None else d for d in spec.shape]
                raise InvalidRequestError(f"input {tensor.name!r}: expected shape {expected}, got {list(shape)}")
            if raw:
                array = codecs.decode_raw(tensor.name, tensor.datatype, shape, raw[i])
            else:
                array = codecs.decode_contents(tensor.name, tensor.datatype, shape, tensor.contents)
            self.registry.check_finite(tensor.name, array)
            feeds[tensor.name] = array
        self.registry.check_batch(next(iter(feeds.values())).shape[0] if feeds else 0)
        return feeds


def _datatype(dtype: str) -> str | None:
    """The v2 datatype of an input's dtype, or None where the protocol has none (never matches)."""
    try:
        return codecs.datatype_of(dtype)
    except InvalidRequestError:
        return None


def _platform(backend: Backend) -> str:
    """The v2 platform name of a backend (the registry's)."""
    from rps_infer.backends import registry

    info = registry.backends().get(backend.name)
    return info.platform if info is not None else backend.name


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
