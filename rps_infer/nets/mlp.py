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


# The layers every MLP file defines, in order, and how reports name them.
LAYERS = ("hidden.pre", "hidden.relu", "logits", "output")
LAYER_TITLES = {"hidden.pre": "hidden pre-activation", "hidden.relu": "hidden ReLU", "logits": "logits",
                "output": "outputs"}
# How many error scales (see float32_allowances) a correct float32 layer may lie off. Measured
# on the six Go-trained files (PyTorch, 512 positions): the worst element used 0.18-0.65 scales.
ERROR_SCALES = 4.0
# Absolute floor of the outputs: float32 exp kernels flush results near float32's smallest
# normal number (1.2e-38) to zero; TensorFlow's softmax does from e^-86.7 (2.2e-38, measured).
FLOAT32_FLUSH = 1e-35
# Relative error of a float32 softmax or sigmoid beyond its logits' (exp, sum, divide, store).
HEAD_ROUNDINGS = 8


def forward(weights: MLPWeights, x: np.ndarray) -> np.ndarray:
    """The float64 reference forward: probabilities [B, outputs] or values [B, 1]."""
    return layer_chain(weights, x)["output"]


def layer_chain(weights: MLPWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer of the float64 forward (:data:`LAYERS`): [B, hidden] twice, then [B, outputs] twice."""
    pre = np.asarray(x, dtype=np.float64) @ weights.w1.T + weights.b1
    hidden = np.maximum(pre, 0.0)
    logits = hidden @ weights.w2.T + weights.b2
    return {"hidden.pre": pre, "hidden.relu": hidden, "logits": logits, "output": head(weights.kind, logits)}


def head(kind: Kind, logits: np.ndarray) -> np.ndarray:
    """Softmax over the row (policy) or the sigmoid (value), in float64 without overflow."""
    if kind == "value":
        return np.exp(-np.logaddexp(0.0, -logits))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def float32_allowances(weights: MLPWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """How far a correct float32 evaluation of each layer may lie from :func:`layer_chain`.

    Computed from the reference alone (weights and inputs), never from a candidate.
    A float32 dot product of n terms in any summation order (BLAS blocking, FMA,
    oneDNN) errs by a sum of n roundings, each at most u times a partial sum; modelled
    as independent (Higham and Mary's probabilistic analysis) their total has the
    scale ``sigma = u (sqrt(n) + 2) sum|w_i a_i|`` (the 2: storing weights and inputs
    in float32). Errors carried from the hidden layer add in quadrature through the
    output weights (ReLU does not amplify them). Each layer's allowance is
    :data:`ERROR_SCALES` sigma. The head's allowance follows from its logits': logit
    errors of at most d change the odds p / (1 - p) by a factor of at most exp(2 max d)
    (softmax) or exp(d) (sigmoid),
    plus :data:`HEAD_ROUNDINGS` roundings (relative; for a sigmoid also absolute) and,
    for the softmax, the float32 rounding of ``z_j - z_max``.

    Against the worst-case bound (``gamma_n``, the error of every order at once) this is
    ~20x tighter on the hidden layer and far tighter on the outputs, where the worst case
    compounds through exp: a x1.001 scale of any layer exceeds it on every Go file.
    """
    u = FLOAT32_UNIT_ROUNDOFF
    chain = layer_chain(weights, x)
    x64 = np.abs(np.asarray(x, dtype=np.float64))
    sigma_pre = u * (np.sqrt(weights.input_size + 1) + 2) * (x64 @ np.abs(weights.w1).T + np.abs(weights.b1))
    pre_allow = ERROR_SCALES * sigma_pre
    # Units the ReLU cuts off (beyond their allowance) carry no error onward.
    carried = np.where(chain["hidden.pre"] > -pre_allow, sigma_pre, 0.0)
    own = u * (np.sqrt(weights.hidden_size + 1) + 2) * (chain["hidden.relu"] @ np.abs(weights.w2).T
                                                        + np.abs(weights.b2))
    sigma_logits = np.sqrt(own**2 + (carried**2) @ (weights.w2**2).T)
    logit_allow = ERROR_SCALES * sigma_logits
    logits = chain["logits"]
    if weights.kind == "value":
        log_factor = logit_allow + HEAD_ROUNDINGS * u
    else:
        # p_j / (1 - p_j): both the numerator's and the denominator's logits may move.
        shifted = np.abs(logits - logits.max(axis=1, keepdims=True))
        log_factor = 2 * logit_allow.max(axis=1, keepdims=True) + u * shifted + HEAD_ROUNDINGS * u
    out_allow = odds_change_allowance(chain["output"], log_factor) + HEAD_ROUNDINGS * u * chain["output"]
    if weights.kind == "value":
        # ONNX Runtime's sigmoid is accurate in absolute terms only: 0 below z = -18, off by up
        # to 1.7e-7 (2.8 u) elsewhere (measured over z in [-100, 100]).
        out_allow = out_allow + HEAD_ROUNDINGS * u
    return {"hidden.pre": pre_allow, "hidden.relu": pre_allow, "logits": logit_allow,
            "output": out_allow + FLOAT32_FLUSH}


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
