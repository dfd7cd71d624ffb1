"""The Open Inference Protocol (KServe v2) once, for both protocols: every route's sequence,
check and error lives here; the gRPC servicer (:mod:`rps_infer.serving.service`) and the REST
routes (:mod:`rps_infer.serving.rest`) only convert their wire format to and from the
protocol-neutral objects below.

An inference request goes: look the model up (ready or not), check the input names, then per
input its datatype and shape, decode it (raw bytes, typed gRPC contents or JSON data: exactly
one), refuse NaN/Inf; check the batch and the outputs asked for; infer; answer every output
asked for (all by default) as an array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import codecs
from rps_infer.serving.models import ModelRegistry, ServedModel
from rps_infer.serving.status import label_model
from rps_infer.version import VERSION

EXTENSIONS = ("binary_tensor_data",)  # the REST binary extension; gRPC has raw contents instead


@dataclass(slots=True)
class InputTensor:
    """One input as it arrived: its data in exactly one of ``raw`` (little-endian row-major
    bytes), ``contents`` (gRPC's typed ``InferTensorContents``), ``json`` (the text of REST's
    ``data``) or ``array`` (that text decoded already, by the process that parsed a large body)."""

    name: str
    datatype: str
    shape: Any  # a sequence of ints as the client sent it
    raw: bytes | None = None
    contents: Any = None
    json: bytes | None = None
    array: np.ndarray | None = None


@dataclass(slots=True)
class InferRequest:
    """A v2 inference request: the model, its inputs, the outputs asked for (none: all)."""

    model_name: str
    model_version: str | None
    inputs: list[InputTensor]
    outputs: list[str] = field(default_factory=list)
    id: str = ""


@dataclass(slots=True)
class OutputTensor:
    """One output: ``array`` in the model's dtype, ``datatype`` its v2 name."""

    name: str
    datatype: str
    array: np.ndarray


@dataclass(slots=True)
class InferResponse:
    """The answer to an :class:`InferRequest`, outputs in the order asked for."""

    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str = ""


class DataPlane:
    """The v2 API over a :class:`~rps_infer.serving.models.ModelRegistry`; raises rps_infer's
    named errors, which :mod:`rps_infer.serving.status` maps to a status for either protocol."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def live(self) -> bool:
        """The server process answers."""
        return True

    def ready(self) -> bool:
        """Every model loaded (and warmed up) and the server not shutting down."""
        return self.registry.ready()

    def model_ready(self, name: str, version: str | None) -> bool:
        """Model ``name`` is loaded and the server not shutting down; unknown: NOT_FOUND."""
        label_model(name)
        model = self.registry.lookup(name, version)
        return model.ready and not self.registry.shutting_down

    @staticmethod
    def server_metadata() -> dict:
        """The server's name, version and extensions."""
        return {"name": "rps_infer", "version": VERSION, "extensions": list(EXTENSIONS)}

    def model_metadata(self, name: str, version: str | None) -> dict:
        """Names, datatypes, shapes (-1 dynamic), versions, platform and serving parameters."""
        label_model(name)
        return self.registry.metadata(self.registry.get(name, version))

    def infer(self, request: InferRequest) -> InferResponse:
        """Check, decode, infer and answer ``request`` (the module's sequence)."""
        label_model(request.model_name)
        registry = self.registry
        model = registry.get(request.model_name, request.model_version)
        feeds = self._decode(model, request.inputs)
        wanted = registry.check_outputs(model, request.outputs)
        results = model.infer(feeds)
        outputs = []
        for name in wanted:
            array = np.asarray(results[name])
            outputs.append(OutputTensor(name, codecs.datatype_of(array.dtype), array))
        return InferResponse(model.name, model.version, outputs, request.id)

    def _decode(self, model: ServedModel, inputs: list[InputTensor]) -> dict[str, np.ndarray]:
        registry = self.registry
        registry.check_inputs(model, [t.name for t in inputs])
        feeds = {}
        for tensor in inputs:
            name, datatype = tensor.name, tensor.datatype
            shape = registry.check_input(model, name, datatype, tensor.shape)
            given = sum(x is not None for x in (tensor.raw, tensor.contents, tensor.json, tensor.array))
            if given != 1:
                what = "no data" if not given else "data given twice (raw bytes and typed or JSON data)"
                raise InvalidRequestError(f"input {name!r}: {what}; the v2 protocol takes exactly one of raw "
                                          "contents, typed contents or JSON data")
            if tensor.raw is not None:
                array = codecs.decode_raw(name, datatype, shape, tensor.raw)
            elif tensor.contents is not None:
                array = codecs.decode_contents(name, datatype, shape, tensor.contents)
            elif tensor.json is not None:
                array = codecs.decode_json(name, datatype, shape, tensor.json)
            else:  # decoded to the request's own datatype and shape, which were just checked
                array = tensor.array
            registry.check_finite(name, array)
            feeds[name] = array
        registry.check_batch(next(iter(feeds.values())).shape[0] if feeds else 0)
        return feeds


__all__ = ["DataPlane", "InferRequest", "InferResponse", "InputTensor", "OutputTensor"]
