"""The v2 REST inference request's JSON: its schema (msgspec: strict types, errors naming
where), :func:`parse`, and :func:`parse_and_decode`, which also decodes every tensor's
``data``: the form a large body is handed to a separate process in (msgspec holds the GIL
while it parses, ~0.1 s per 64 MB, which would stall the event loop's probes).

Imports nothing of the server, so that process starts light.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
from typing import Any

import msgspec
import numpy as np

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import codecs


class RestInput(msgspec.Struct):
    """One of a request's ``inputs``."""

    name: str
    datatype: str
    shape: list[int]
    data: msgspec.Raw = msgspec.Raw()  # its text, empty when absent
    parameters: dict[str, Any] = {}


class RestOutput(msgspec.Struct):
    """One of a request's ``outputs``."""

    name: str
    parameters: dict[str, Any] = {}


class RestRequest(msgspec.Struct):
    """A v2 REST inference request's JSON header."""

    inputs: list[RestInput]
    outputs: list[RestOutput] = []
    id: str | None = None
    parameters: dict[str, Any] = {}


_DECODER = msgspec.json.Decoder(RestRequest)


def data_of(tensor: RestInput) -> bytes | None:
    """The JSON text of a tensor's ``data``, None when absent or null."""
    data = bytes(tensor.data) if len(tensor.data) < 8 else tensor.data  # short: maybe absent or null
    return None if data in (b"", b"null") else data


def parse(header: memoryview) -> RestRequest:
    """A request's JSON header by the schema; anything else, nesting too deep too, is a 400."""
    try:
        return _DECODER.decode(header)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"the request does not fit the v2 inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        hint = ""
        if re.search(rb"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])", header):
            hint = (" (JSON has no NaN or Infinity: send them as binary data, to a server started with "
                    "--allow-nonfinite)")
        raise InvalidRequestError(f"the request is not valid JSON: {exc}{hint}") from None
    except RecursionError:  # msgspec's nesting limit is the interpreter's recursion limit
        raise InvalidRequestError("the request's JSON is nested too deeply") from None


def parse_and_decode(header: bytes) -> tuple[RestRequest, list[np.ndarray | None]]:
    """:func:`parse`, then each input's JSON data as an array of its own datatype and shape
    (None where it has none); the request comes back without the data's text."""
    request = parse(memoryview(header))
    arrays = []
    for tensor in request.inputs:
        data = data_of(tensor)
        shape = codecs.check_shape(tensor.name, tensor.shape, codecs.MAX_ELEMENTS)
        arrays.append(None if data is None else codecs.decode_json(tensor.name, tensor.datatype, shape, data))
        tensor.data = msgspec.Raw()
    return request, arrays


def die_with_parent() -> None:
    """In the parser process: end with the server, even a killed one (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the server died before the line above ran
        os._exit(0)


__all__ = ["RestInput", "RestOutput", "RestRequest", "data_of", "die_with_parent", "parse", "parse_and_decode"]
