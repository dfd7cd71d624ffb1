"""The RPS policy/value MLP: its weights, the float64 reference forward, and its
float32 rounding-error bound.

Weights are stored in the Go layout, which is also PyTorch's ``nn.Linear`` layout:
``w1`` [hidden, inputs], ``w2`` [outputs, hidden]. Keras ``Dense`` kernels are the
transposes; :meth:`MLPWeights.keras_weights` and :meth:`MLPWeights.from_keras_weights`
are the only place that transposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["policy", "value"]
KINDS: tuple[Kind, ...] = ("policy", "value")

# Unit roundoff of float32 (round to nearest).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


@dataclass(frozen=True)
class MLPWeights:
    """One hidden ReLU layer; softmax over ``outputs`` (policy) or one sigmoid (value).

    All arrays are float64. ``w1`` [hidden, inputs], ``b1`` [hidden],
    ``w2`` [outputs, hidden], ``b2`` [outputs] (a value net has outputs == 1).
    """

    kind: Kind
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def input_size(self) -> int:
        """Number of input features (81 for the RPS board)."""
        return self.w1.shape[1]

    @property
    def hidden_size(self) -> int:
        """Width of the hidden ReLU layer."""
        return self.w1.shape[0]

    @property
    def output_size(self) -> int:
        """9 for an RPS policy, 1 for a value net."""
        return self.w2.shape[0]

    def torch_state(self) -> dict[str, np.ndarray]:
        """Parameters named as in :class:`rps_infer.nets.torch_mlp.TorchMLP` (float32)."""
        return {
            "hidden.weight": self.w1.astype(np.float32),
            "hidden.bias": self.b1.astype(np.float32),
            "out.weight": self.w2.astype(np.float32),
            "out.bias": self.b2.astype(np.float32),
        }

    @classmethod
    def from_torch_state(cls, kind: Kind, state: dict[str, np.ndarray]) -> MLPWeights:
        """Inverse of :meth:`torch_state`."""
        return cls(
            kind,
            *(np.asarray(state[k], dtype=np.float64)
              for k in ("hidden.weight", "hidden.bias", "out.weight", "out.bias")),
        )

    def keras_weights(self) -> list[np.ndarray]:
        """``[kernel1, bias1, kernel2, bias2]`` for two Keras Dense layers (kernels transposed)."""
        return [
            self.w1.T.astype(np.float32),
            self.b1.astype(np.float32),
            self.w2.T.astype(np.float32),
            self.b2.astype(np.float32),
        ]

    @classmethod
    def from_keras_weights(cls, kind: Kind, weights: list[np.ndarray]) -> MLPWeights:
        """Inverse of :meth:`keras_weights`."""
        k1, b1, k2, b2 = (np.asarray(w, dtype=np.float64) for w in weights)
        return cls(kind, k1.T, b1, k2.T, b2)


def forward(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    """The float64 reference forward: probabilities [B, outputs] or values [B, 1]."""
    logits = _logits(weights, np.asarray(x, dtype=np.float64))
    if weights.kind == "value":
        return np.exp(-np.logaddexp(0.0, -logits))  # sigmoid without overflow for large |z|
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _logits(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    hidden = np.maximum(x @ weights.w1.T + weights.b1, 0.0)
    return hidden @ weights.w2.T + weights.b2


def _gamma(terms: int) -> float:
    """Higham's gamma_n: the relative error bound of an n-term float32 sum of products."""
    nu = terms * FLOAT32_UNIT_ROUNDOFF
    return nu / (1.0 - nu)


def float32_output_allowance(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    """How far any correct float32 evaluation of this MLP may lie from :func:`forward`.

    A rigorous first-order bound, per output element, for float32 arithmetic in any
    summation order (BLAS, FMA, ONNX Runtime, oneDNN): each layer ``W a + b`` with n
    terms errs by at most ``gamma(n + 1) * (|W| |a| + |b|)``, plus one rounding each of
    the weights and inputs to float32, plus the error carried in from the layer
    before (ReLU does not amplify it). That bounds every logit's error by ``delta``
    per row. Logits all shifted by at most ``delta`` change every output's odds
    (p / (1 - p)) by at most a factor ``exp(2 delta)`` for a softmax and ``exp(delta)``
    for a sigmoid; the allowance is the largest change in p that factor permits.

    The bound is large exactly where float32 cannot do better (trained nets with
    logits in the thousands) and vanishes where the output saturates at 0 or 1, so a
    dropped sigmoid or a log-softmax is still caught there.
    """
    x = np.asarray(x, dtype=np.float64)
    u = FLOAT32_UNIT_ROUNDOFF
    abs_x = np.abs(x)
    pre1 = abs_x @ np.abs(weights.w1).T + np.abs(weights.b1)
    err_hidden = (_gamma(weights.input_size + 1) + 3 * u) * pre1
    hidden = np.maximum(x @ weights.w1.T + weights.b1, 0.0)
    abs_w2 = np.abs(weights.w2)
    pre2 = (hidden + err_hidden) @ abs_w2.T + np.abs(weights.b2)
    err_logits = err_hidden @ abs_w2.T + (_gamma(weights.hidden_size + 1) + 2 * u) * pre2
    delta = err_logits.max(axis=1, keepdims=True)
    p = forward(weights, x)
    log_factor = delta if weights.kind == "value" else 2.0 * delta
    return odds_change_allowance(p, log_factor)


def odds_change_allowance(p: np.ndarray, log_factor: np.ndarray) -> np.ndarray:
    """Largest |p' - p| when the odds p / (1 - p) are scaled by at most ``exp(+-log_factor)``."""
    with np.errstate(over="ignore"):
        up = np.exp(np.minimum(log_factor, 700.0))
    down = 1.0 / up
    q = 1.0 - p
    high = p / (p + q * down)
    low = p / (p + q * up)
    return np.maximum(high - p, p - low)


def random_weights(
    rng: np.random.Generator,
    kind: Kind,
    input_size: int = 81,
    hidden_size: int = 64,
    output_size: int | None = None,
    scale: float = 1.0,
) -> MLPWeights:
    """Seeded weights with He-style scaling times ``scale`` (large scales saturate the outputs)."""
    outputs = output_size if output_size is not None else (9 if kind == "policy" else 1)
    if kind == "value" and outputs != 1:
        raise ValueError(f"a value net has exactly 1 output, got {outputs}")
    s1 = scale * np.sqrt(2.0 / input_size)
    s2 = scale * np.sqrt(2.0 / hidden_size)
    return MLPWeights(
        kind,
        rng.normal(0.0, s1, (hidden_size, input_size)),
        rng.normal(0.0, 0.1 * scale, hidden_size),
        rng.normal(0.0, s2, (outputs, hidden_size)),
        rng.normal(0.0, 0.1 * scale, outputs),
    )
