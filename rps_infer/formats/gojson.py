"""The Go JSON weight format of the neural_rps training programs.

policy: ``inputSize``, ``hiddenSize``, ``outputSize``, ``weightsInputHidden`` [hidden][input],
``biasesHidden`` [hidden], ``weightsHiddenOutput`` [output][hidden], ``biasesOutput`` [output];
forward = softmax(W2 relu(W1 x + b1) + b2).

value: the same without ``outputSize``; ``weightsHiddenOutput`` is [1][hidden] and
``biasOutput`` one number; forward = sigmoid(...), shape [batch, 1].

Reading validates everything and raises :class:`ModelFormatError` naming the file,
the field, what was expected and what was found. Round trips are exact in values
(not in bytes: Go writes ``1e-7`` where Python writes ``1e-07``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.errors import ModelFormatError
from rps_infer.nets.mlp import KINDS, Kind, MLPWeights
from rps_infer.util import atomic_write

POLICY_KEYS = ("inputSize", "hiddenSize", "outputSize", "weightsInputHidden", "biasesHidden",
               "weightsHiddenOutput", "biasesOutput")
VALUE_KEYS = ("inputSize", "hiddenSize", "weightsInputHidden", "biasesHidden",
              "weightsHiddenOutput", "biasOutput")


def detect_kind(obj: dict[str, Any]) -> Kind:
    """``value`` when the file has a scalar ``biasOutput``, ``policy`` when it has ``biasesOutput``."""
    if "biasesOutput" in obj or "outputSize" in obj:
        return "policy"
    return "value"


def read(path: str | Path, kind: Kind | None = None) -> MLPWeights:
    """Read and validate a Go JSON weight file; ``kind`` overrides detection from the keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFormatError(path, "<file>", "an existing file", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFormatError(path, "<file>", "a readable UTF-8 text file", str(exc)) from None
    if not text.strip():
        raise ModelFormatError(path, "<file>", "a JSON object", "an empty file")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except _NonFiniteError as exc:
        raise ModelFormatError(path, "<file>", "finite numbers", f"the literal {exc.args[0]}") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(path, "<file>", "valid JSON", f"{exc.msg} at line {exc.lineno}") from None
    return from_dict(obj, path, kind)


class _NonFiniteError(ValueError):
    pass


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN/Infinity, which Go never writes; refuse them here.
    raise _NonFiniteError(name)


def from_dict(obj: Any, path: str | Path = "<memory>", kind: Kind | None = None) -> MLPWeights:
    """Validate a decoded JSON object and build :class:`MLPWeights` from it."""
    if not isinstance(obj, dict):
        raise ModelFormatError(path, "<root>", "a JSON object", type(obj).__name__)
    if kind is None:
        kind = detect_kind(obj)
    elif kind not in KINDS:
        raise ModelFormatError(path, "<kind>", "'policy' or 'value'", repr(kind))
    for key in POLICY_KEYS if kind == "policy" else VALUE_KEYS:
        if key not in obj:
            raise ModelFormatError(path, key, f"a key of a {kind} file", "it is missing")
    inputs = _size(obj, "inputSize", path)
    hidden = _size(obj, "hiddenSize", path)
    outputs = _size(obj, "outputSize", path) if kind == "policy" else 1
    w1 = _matrix(obj, "weightsInputHidden", (hidden, inputs), path)
    b1 = _vector(obj, "biasesHidden", hidden, path)
    w2 = _matrix(obj, "weightsHiddenOutput", (outputs, hidden), path)
    if kind == "policy":
        b2 = _vector(obj, "biasesOutput", outputs, path)
    else:
        b2 = np.array([_number(obj["biasOutput"], "biasOutput", path)])
    return MLPWeights(kind, w1, b1, w2, b2)


def _size(obj: dict[str, Any], key: str, path: str | Path) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ModelFormatError(path, key, "a positive integer", repr(value))
    if value <= 0:
        raise ModelFormatError(path, key, "a positive integer", repr(value))
    return int(value)


def _number(value: Any, field: str, path: str | Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFormatError(path, field, "a number", f"{type(value).__name__} {value!r:.40}")
    if not math.isfinite(value):
        raise ModelFormatError(path, field, "a finite number", repr(value))
    return float(value)


def _vector(obj: dict[str, Any], key: str, length: int, path: str | Path, row: int | None = None) -> np.ndarray:
    value = obj[key] if row is None else obj[key][row]
    field = key if row is None else f"{key}[{row}]"
    if not isinstance(value, list):
        raise ModelFormatError(path, field, "a list of numbers", type(value).__name__)
    if len(value) != length:
        raise ModelFormatError(path, field, f"{length} numbers", f"{len(value)}")
    return np.array([_number(v, f"{field}[{i}]", path) for i, v in enumerate(value)], dtype=np.float64)


def _matrix(obj: dict[str, Any], key: str, shape: tuple[int, int], path: str | Path) -> np.ndarray:
    value = obj[key]
    if not isinstance(value, list):
        raise ModelFormatError(path, key, f"a list of {shape[0]} rows", type(value).__name__)
    if len(value) != shape[0]:
        raise ModelFormatError(path, key, f"{shape[0]} rows", f"{len(value)} rows")
    return np.stack([_vector(obj, key, shape[1], path, row=r) for r in range(shape[0])])


def to_dict(weights: MLPWeights) -> dict[str, Any]:
    """The JSON object the Go programs write for these weights."""
    obj: dict[str, Any] = {
        "inputSize": weights.input_size,
        "hiddenSize": weights.hidden_size,
        "weightsInputHidden": weights.w1.tolist(),
        "biasesHidden": weights.b1.tolist(),
        "weightsHiddenOutput": weights.w2.tolist(),
    }
    if weights.kind == "policy":
        obj["outputSize"] = weights.output_size
        obj["biasesOutput"] = weights.b2.tolist()
    else:
        obj["biasOutput"] = float(weights.b2[0])
    return obj


def write(weights: MLPWeights, path: str | Path) -> Path:
    """Write weights as Go JSON, atomically (a temp file renamed into place)."""
    for name in ("w1", "b1", "w2", "b2"):
        if not np.isfinite(getattr(weights, name)).all():
            raise ModelFormatError(path, name, "finite numbers", "NaN or Inf")
    data = json.dumps(to_dict(weights)).encode("utf-8")
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
