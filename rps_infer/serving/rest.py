"""The Open Inference Protocol (KServe v2) over HTTP/REST, independent of the HTTP server.

Each route is a plain function of the registry and the request's parts that returns a
:class:`Reply` (status, headers, body bytes); the HTTP stack (:mod:`rps_infer.serving.http`)
only moves bytes. Errors become statuses through the one error map
(:func:`rps_infer.serving.status.http_status_for`), with the same messages as gRPC.

Tensors travel as JSON (``data``, row-major, flattened or nested) or, with the binary-tensor
extension, as raw bytes after the JSON header: the request's ``Inference-Header-Content-Length``
says where the JSON ends, each binary input says its ``binary_data_size``; outputs are
binary when the request asks for it (an output's ``binary_data`` parameter, or
``binary_data_output`` for all), and the reply then carries the header length too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import codecs
from rps_infer.serving.status import http_status_for, label_model
from rps_infer.version import VERSION

HEADER_LENGTH = "inference-header-content-length"
JSON = "application/json"
BINARY = "application/octet-stream"


@dataclass
class Reply:
    """What an HTTP route answers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": JSON})


def _json(status: int, payload: dict) -> Reply:
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode())


def error(exc: BaseException) -> Reply:
    """The reply for ``exc``: its HTTP status and ``{"error": message}``."""
    status, message = http_status_for(exc)
    return _json(status, {"error": message})


def live() -> Reply:
    """``GET /v2/health/live``."""
    return _json(200, {"live": True})


def ready(registry) -> Reply:
    """``GET /v2/health/ready``: 200 when every model is ready, else 503."""
    is_ready = registry.ready()
    return _json(200 if is_ready else 503, {"ready": is_ready})


def server_metadata() -> Reply:
    """``GET /v2``."""
    return _json(200, {"name": "rps_infer", "version": VERSION, "extensions": ["binary_tensor_data"]})


def model_ready(registry, name: str, version: str | None) -> Reply:
    """``GET /v2/models/{name}[/versions/{v}]/ready``: 200 ready, 503 not, 404 unknown."""
    label_model(name)
    model = registry.lookup(name, version)
    is_ready = model.ready and not registry.shutting_down
    return _json(200 if is_ready else 503, {"name": name, "ready": is_ready})


def model_metadata(registry, name: str, version: str | None) -> Reply:
    """``GET /v2/models/{name}[/versions/{v}]``: names, datatypes, shapes (-1 dynamic), the
    versions served, the platform and the model's serving parameters (batching)."""
    label_model(name)
    model = registry.get(name, version)
    return _json(200, registry.metadata(model))


def infer(registry, name: str, version: str | None, body: bytes, header_length: str | None) -> Reply:
    """``POST /v2/models/{name}[/versions/{v}]/infer``."""
    label_model(name)
    model = registry.get(name, version)
    request, binary = _split(body, header_length)
    feeds = _inputs(registry, model, request, binary)
    wanted, binary_out = _outputs(registry, model, request)
    outputs = model.infer(feeds)
    tensors, blobs = [], []
    for out_name in wanted:
        array = np.asarray(outputs[out_name])
        tensor = {"name": out_name, "datatype": codecs.datatype_of(array.dtype), "shape": list(array.shape)}
        if binary_out.get(out_name):
            raw = codecs.to_raw(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    header = {"model_name": model.name, "model_version": model.version, "outputs": tensors}
    if "id" in request:
        header["id"] = request["id"]
    text = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return Reply(200, text)
    return Reply(200, text + b"".join(blobs), {"content-type": BINARY, HEADER_LENGTH: str(len(text))})


def _split(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header and the binary part of a request body."""
    try:
        size = len(body) if header_length is None else int(header_length)
    except ValueError:
        raise InvalidRequestError(f"Inference-Header-Content-Length must be a number, got {header_length!r}") from None
    if not 0 <= size <= len(body):
        raise InvalidRequestError(f"Inference-Header-Content-Length {size} is outside the body of {len(body)} bytes")
    try:
        request = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise InvalidRequestError("the request must be a JSON object with an 'inputs' list")
    return request, body[size:]


def _inputs(registry, model, request: dict, binary: bytes) -> dict[str, np.ndarray]:
    """Each input as an array, checked as the gRPC API checks it."""
    if not all(isinstance(t, dict) for t in request["inputs"]):
        raise InvalidRequestError("each of 'inputs' must be a JSON object with name, datatype, shape and data")
    registry.check_inputs(model, [t.get("name") for t in request["inputs"]])
    feeds, offset = {}, 0
    for tensor in request["inputs"]:
        name, datatype = tensor["name"], tensor.get("datatype")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidRequestError(f"input {name!r}: 'shape' must be a list of integers, got {shape!r}")
        shape = registry.check_input(model, name, datatype, shape)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidRequestError(f"input {name!r}: binary_data_size {size!r} does not fit the "
                                          f"{len(binary) - offset} binary bytes left")
            array = codecs.decode_raw(name, datatype, shape, binary[offset:offset + size])
            offset += size
        else:
            array = _from_json(name, datatype, shape, tensor.get("data"))
        registry.check_finite(name, array)
        feeds[name] = array
    if offset != len(binary):
        raise InvalidRequestError(f"{len(binary) - offset} binary bytes after the last binary input")
    registry.check_batch(next(iter(feeds.values())).shape[0] if feeds else 0)
    return feeds


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data) -> np.ndarray:
    """A tensor from JSON ``data`` (flat or nested lists, row-major)."""
    if data is None:
        raise InvalidRequestError(f"input {name!r}: neither 'data' nor a binary_data_size parameter")
    dtype = codecs.NUMPY_DTYPES.get(datatype)
    if dtype is None or datatype == "FP16":
        raise InvalidRequestError(f"input {name!r}: datatype {datatype!r} cannot travel as JSON")
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"input {name!r}: 'data' is not {datatype} values: {exc}") from None
    count = int(np.prod(shape))
    if array.size != count:
        raise InvalidRequestError(f"input {name!r}: {datatype}{list(shape)} needs {count} values, got {array.size}")
    return array.reshape(shape)


def _outputs(registry, model, request: dict) -> tuple[list[str], dict[str, bool]]:
    """The outputs asked for (all by default) and which of them travel as binary."""
    default = bool((request.get("parameters") or {}).get("binary_data_output", False))
    asked = request.get("outputs") or []
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise InvalidRequestError("'outputs' must be a list of objects with a 'name'")
    wanted = registry.check_outputs(model, [o.get("name") for o in asked])
    binary = {n: default for n in wanted}
    for o in asked:
        if isinstance(o, dict) and "binary_data" in (o.get("parameters") or {}):
            binary[o["name"]] = bool(o["parameters"]["binary_data"])
    return wanted, binary


__all__ = [
    "Reply",
    "error",
    "infer",
    "live",
    "model_metadata",
    "model_ready",
    "ready",
    "server_metadata",
]
