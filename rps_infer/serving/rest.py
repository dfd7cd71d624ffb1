"""The Open Inference Protocol (KServe v2) over HTTP/REST: converts JSON (and the binary-tensor
extension) to and from the one v2 data plane (:mod:`rps_infer.serving.dataplane`).

Each route is a plain function of the data plane and the request's parts that returns a
:class:`Reply` (status, headers, body bytes); the HTTP stack (:mod:`rps_infer.serving.http`)
only moves bytes. Errors become statuses through the one error map
(:func:`rps_infer.serving.status.http_status_for`), with the same messages as gRPC.

Requests are parsed by a schema (msgspec): a field of the wrong JSON type is a 400 naming
where it is; a tensor's ``data`` is kept as text and decoded once its datatype is known
(:func:`rps_infer.serving.codecs.decode_json`). With the binary-tensor extension, raw bytes
follow the JSON header: the request's ``Inference-Header-Content-Length`` says where the JSON
ends, each binary input says its ``binary_data_size``; outputs are binary when the request
asks for it (an output's ``binary_data`` parameter, or ``binary_data_output`` for all), and
the reply then carries the header length too.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

import msgspec
import numpy as np

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import codecs, v2json
from rps_infer.serving.dataplane import DataPlane, InferRequest, InputTensor
from rps_infer.serving.status import http_status_for

HEADER_LENGTH = "inference-header-content-length"
JSON = "application/json"
BINARY = "application/octet-stream"


_ENCODER = msgspec.json.Encoder()


@dataclass
class Reply:
    """What an HTTP route answers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": JSON})


def _json(status: int, payload: dict) -> Reply:
    return Reply(status, _ENCODER.encode(payload))


def error(exc: BaseException) -> Reply:
    """The reply for ``exc``: its HTTP status and ``{"error": message}``."""
    status, message = http_status_for(exc)
    return _json(status, {"error": message})


def live(plane: DataPlane) -> Reply:
    """``GET /v2/health/live``."""
    return _json(200, {"live": plane.live()})


def ready(plane: DataPlane) -> Reply:
    """``GET /v2/health/ready``: 200 when every model is ready (loaded, warmed up), else 503."""
    is_ready = plane.ready()
    return _json(200 if is_ready else 503, {"ready": is_ready})


def server_metadata(plane: DataPlane) -> Reply:
    """``GET /v2``."""
    return _json(200, plane.server_metadata())


def model_ready(plane: DataPlane, name: str, version: str | None) -> Reply:
    """``GET /v2/models/{name}[/versions/{v}]/ready``: 200 ready, 503 not, 404 unknown."""
    is_ready = plane.model_ready(name, version)
    return _json(200 if is_ready else 503, {"name": name, "ready": is_ready})


def model_metadata(plane: DataPlane, name: str, version: str | None) -> Reply:
    """``GET /v2/models/{name}[/versions/{v}]``: names, datatypes, shapes (-1 dynamic), the
    versions served, the platform and the model's serving parameters (batching)."""
    return _json(200, plane.model_metadata(name, version))


def infer(plane: DataPlane, name: str, version: str | None, body: bytes, header_length: str | None,
          separately: Executor | None = None) -> Reply:
    """``POST /v2/models/{name}[/versions/{v}]/infer``; ``separately``: a process pool that
    parses the JSON and decodes its data (large bodies), so this process's GIL stays free."""
    header, binary = _split(body, header_length)
    if separately is None:
        request, arrays = v2json.parse(header), None
    else:
        request, arrays = separately.submit(v2json.parse_and_decode, bytes(header)).result()
    inputs, offset = [], 0
    for i, tensor in enumerate(request.inputs):
        size = tensor.parameters.get("binary_data_size")
        raw = None
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidRequestError(f"input {tensor.name!r}: binary_data_size {size!r} does not fit the "
                                          f"{len(binary) - offset} binary bytes left")
            raw, offset = binary[offset:offset + size], offset + size
        inputs.append(InputTensor(tensor.name, tensor.datatype, tensor.shape, raw=raw,
                                  json=v2json.data_of(tensor) if arrays is None else None,
                                  array=None if arrays is None else arrays[i]))
    if offset != len(binary):
        raise InvalidRequestError(f"{len(binary) - offset} binary bytes after the last binary input")
    answer = plane.infer(InferRequest(name, version, inputs, [o.name for o in request.outputs], request.id or ""))
    default = request.parameters.get("binary_data_output") is True
    binary_out = {o.name: o.parameters.get("binary_data", default) is True for o in request.outputs}
    tensors, blobs = [], []
    for out in answer.outputs:
        tensor = {"name": out.name, "datatype": out.datatype, "shape": list(out.array.shape)}
        if binary_out.get(out.name, default):
            raw = codecs.to_raw(out.array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = json_data(out.array)
        tensors.append(tensor)
    header = {"model_name": answer.model_name, "model_version": answer.model_version, "outputs": tensors}
    if request.id is not None:
        header["id"] = request.id
    text = _ENCODER.encode(header)
    if not blobs:
        return Reply(200, text)
    return Reply(200, text + b"".join(blobs), {"content-type": BINARY, HEADER_LENGTH: str(len(text))})


PIECE = 1 << 16  # values per encoding step of a large output (each holds the GIL ~1 ms)


def json_data(array: np.ndarray) -> list | msgspec.Raw:
    """``array``'s values, flattened, for a reply's ``data``; a large one encoded piece by
    piece, so the event loop's thread gets the GIL between pieces."""
    flat = array.ravel()
    if flat.size <= PIECE:
        return flat.tolist()
    pieces = (_ENCODER.encode(flat[i:i + PIECE].tolist())[1:-1] for i in range(0, flat.size, PIECE))
    return msgspec.Raw(b"[" + b",".join(pieces) + b"]")


def _split(body: bytes, header_length: str | None) -> tuple[memoryview, memoryview]:
    """The JSON header and the binary part of a request body."""
    try:
        size = len(body) if header_length is None else int(header_length)
    except ValueError:
        raise InvalidRequestError(f"Inference-Header-Content-Length must be a number, got {header_length!r}") from None
    if not 0 <= size <= len(body):
        raise InvalidRequestError(f"Inference-Header-Content-Length {size} is outside the body of {len(body)} bytes")
    view = memoryview(body)
    return view[:size], view[size:]


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
