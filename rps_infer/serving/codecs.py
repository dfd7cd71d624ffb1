"""Tensors on the wire: one datatype table and its inverse, raw bytes and typed contents.

Open Inference Protocol tensors travel as raw little-endian row-major bytes
(``raw_input_contents``, the REST binary extension), in a typed ``contents`` field (gRPC) or
as JSON ``data`` (REST); numpy arrays are built with ``np.frombuffer`` / ``tobytes``, never
element by element for raw tensors.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence

import msgspec
import numpy as np

from rps_infer.errors import InvalidRequestError

# v2 datatype -> numpy dtype (little-endian); the inverse is DATATYPES below.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES: dict[np.dtype, str] = {dtype.newbyteorder("="): name for name, dtype in NUMPY_DTYPES.items()}

# Which typed `contents` field carries each datatype (FP16 has none: raw only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def datatype_of(dtype: np.dtype | str) -> str:
    """The v2 datatype name of a numpy dtype (``float32`` -> ``FP32``)."""
    known = _DATATYPE_CACHE.get(dtype)
    if known is not None:  # the hot path: a dtype seen before (~1 us saved per tensor)
        return known
    native = np.dtype(dtype).newbyteorder("=")
    if native not in DATATYPES:
        raise InvalidRequestError(f"numpy dtype {native} has no Open Inference Protocol datatype")
    _DATATYPE_CACHE[dtype] = DATATYPES[native]
    return DATATYPES[native]


_DATATYPE_CACHE: dict = {}


def check_shape(name: str, shape: Sequence[int], limit: int) -> tuple[int, ...]:
    """Shape from the wire: non-negative dims and at most ``limit`` elements."""
    shape = tuple(shape)
    count = 1
    for d in shape:
        if d < 0:
            raise InvalidRequestError(f"input {name!r}: shape {list(shape)} has a negative dimension")
        count *= d
        if count > limit:
            raise InvalidRequestError(f"input {name!r}: shape {list(shape)} has more than {limit} elements")
    return shape


def decode_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """A tensor from raw bytes; the byte count must match datatype and shape exactly."""
    dtype = _dtype(name, datatype)
    count = 1
    for d in shape:
        count *= d
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidRequestError(
            f"input {name!r}: {datatype}{list(shape)} needs {expected} raw bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_contents(name: str, datatype: str, shape: tuple[int, ...], contents) -> np.ndarray:
    """A tensor from the typed ``contents`` field matching its datatype."""
    dtype = _dtype(name, datatype)
    field = CONTENTS_FIELDS.get(datatype)
    if field is None:
        raise InvalidRequestError(f"input {name!r}: {datatype} travels only as raw_input_contents")
    values = getattr(contents, field)
    expected = int(np.prod(shape, dtype=np.int64))
    if len(values) != expected:
        raise InvalidRequestError(
            f"input {name!r}: {datatype}{list(shape)} needs {expected} values in {field}, got {len(values)}"
        )
    return np.array(values, dtype=dtype).reshape(shape)


MAX_JSON_RANK = 32  # JSON data nested deeper than this is refused before it is parsed
JSON_PIECE_BYTES = 1 << 20  # flat JSON data longer than this is decoded a piece at a time
MAX_ELEMENTS = 1 << 28  # refuse shapes claiming more elements than this before allocating
# The JSON value each datatype's elements must be: strict, so `true` is no FP32 and 1.5 no INT32.
JSON_ELEMENTS = {"BOOL": bool, "FP32": float, "FP64": float,
                 **{name: int for name in NUMPY_DTYPES if name.startswith(("INT", "UINT"))}}


def decode_json(name: str, datatype: str, shape: tuple[int, ...], data: bytes) -> np.ndarray:
    """A tensor from the JSON text of its ``data`` (flat or nested, row-major), each element
    of the JSON type its datatype takes and in its range."""
    dtype = _dtype(name, datatype)
    element = JSON_ELEMENTS.get(datatype)
    if element is None:
        raise InvalidRequestError(f"input {name!r}: datatype {datatype} cannot travel as JSON (use binary data)")
    rank = _json_rank(data)
    if rank > MAX_JSON_RANK:
        raise InvalidRequestError(f"input {name!r}: 'data' is nested deeper than {MAX_JSON_RANK} levels")
    try:
        if rank == 1 and len(data) > JSON_PIECE_BYTES:
            array = _decode_flat_in_pieces(bytes(data), element, dtype)
        else:
            array = np.asarray(msgspec.json.decode(data, type=_nested_list(element, max(rank, 1))), dtype=dtype)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidRequestError(f"input {name!r}: 'data' must hold {datatype} values ({element.__name__}): "
                                  f"{exc}") from None
    except (OverflowError, ValueError) as exc:  # out of the datatype's range, or ragged
        raise InvalidRequestError(f"input {name!r}: 'data' is not {datatype}{list(shape)}: {exc}") from None
    count = 1
    for d in shape:
        count *= d
    if array.size != count:
        raise InvalidRequestError(f"input {name!r}: {datatype}{list(shape)} needs {count} values, got {array.size}")
    return array.reshape(shape)


def _decode_flat_in_pieces(text: bytes, element: type, dtype: np.dtype) -> np.ndarray:
    """A long flat JSON array decoded a piece at a time: the Python values of one piece at
    most exist at once (a 64 MB body's whole list would be ~170 MB of them)."""
    start, end = text.index(b"[") + 1, text.rindex(b"]")
    pieces, done, pos = [], 0, start
    while pos < end:
        cut = text.find(b",", min(pos + JSON_PIECE_BYTES, end))
        cut = end if cut < 0 or cut > end else cut
        try:
            values = msgspec.json.decode(b"[" + text[pos:cut] + b"]", type=list[element])
        except msgspec.ValidationError as exc:  # name the element's index in the whole array
            message = re.sub(r"\$\[(\d+)\]", lambda m, done=done: f"$[{int(m.group(1)) + done}]", str(exc), count=1)
            raise msgspec.ValidationError(message) from None
        pieces.append(np.asarray(values, dtype=dtype))
        done += len(values)
        pos = cut + 1
    return np.concatenate(pieces) if pieces else np.empty(0, dtype)


def _json_rank(data: bytes) -> int:
    """How many arrays the JSON text opens before its first element (counting stops past the limit)."""
    rank = 0
    for byte in bytes(memoryview(data)[:4 * MAX_JSON_RANK + 4]):
        if byte == 0x5B:  # [
            rank += 1
        elif byte not in b" \t\r\n":
            break
    return rank


@functools.cache
def _nested_list(element: type, rank: int):
    return list[element] if rank == 1 else list[_nested_list(element, rank - 1)]


def encode_contents(array: np.ndarray, contents) -> None:
    """Fill a typed ``contents`` message with ``array`` (flattened, row-major)."""
    field = CONTENTS_FIELDS.get(datatype_of(array.dtype))
    if field is None:
        raise InvalidRequestError(f"{array.dtype} outputs travel only as raw_output_contents")
    getattr(contents, field).extend(array.ravel().tolist())


def to_raw(array: np.ndarray) -> bytes:
    """Little-endian, row-major bytes of ``array``."""
    if (array.dtype.byteorder in "=|" and LITTLE_ENDIAN) or array.dtype.byteorder == "<":
        return array.tobytes()  # tobytes is row-major whatever the layout
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


LITTLE_ENDIAN = sys.byteorder == "little"


def _dtype(name: str, datatype: str) -> np.dtype:
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise InvalidRequestError(f"input {name!r}: unknown datatype {datatype!r}; known: {', '.join(NUMPY_DTYPES)}")
    return dtype
