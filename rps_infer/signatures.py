"""Export-bug signatures: the common ways an export computes a different function, each
recognised by recomputing the reference with that bug and checking that the candidate
matches it within the noise (the same allowance the layer was judged with).

Each function returns the ``likely cause:`` sentence ``verify`` prints, or None.
Signatures on the outputs need only the reference's logits; the layer signatures
(a scaled layer, transposed or reinterpreted weights, a shifted bias) need the
candidate's counterpart of that layer (see :mod:`rps_infer.layers`). For a PyTorch
reference compared block by block (its ``parity_blocks()`` or its leaf modules), the
first differing block is rerun with the bug: batch-norm statistics, scaled weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rps_infer.nets.mlp import MLPWeights, layer_chain

# A bug's recomputed outputs must match the candidate this much closer than the reference
# does, and within a relative 1e-4 of their own scale, to be named.
_RELATIVE_FIT = 1e-4


# A shifted bias shows as the same offset on every row: it takes a few rows to tell.
_BIAS_ROWS = 8


def _fits(candidate: np.ndarray, guess: np.ndarray, allowance: np.ndarray | float) -> bool:
    if candidate.shape != guess.shape or not np.all(np.isfinite(guess)):
        return False
    scale = float(np.max(np.abs(guess))) or 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(candidate.astype(np.float64) - guess)
    return bool(np.all(diff <= np.maximum(allowance, 0.0) + _RELATIVE_FIT * scale))


def head_cause(kind: str, chain: Mapping[str, np.ndarray], output: np.ndarray) -> str | None:
    """A wrong or missing head on correct logits."""
    z = chain["logits"]
    allow = _RELATIVE_FIT * (1.0 + np.abs(z))
    name = "softmax" if kind == "policy" else "sigmoid"
    if _fits(output, z, allow):
        return f"the final {name} is missing (the outputs are the logits)"
    if kind == "policy":
        log_p = z - np.log(np.sum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1, keepdims=True)) - z.max(
            axis=1, keepdims=True)
        if _fits(output, log_p, allow):
            return "log-softmax instead of softmax (the outputs are log-probabilities)"
    elif _fits(output, np.tanh(z), allow) or _fits(output, 2.0 * chain["output"] - 1.0, allow):
        return "tanh instead of sigmoid (the outputs lie in [-1, 1])"
    return None


def layer_cause(weights: MLPWeights, x: np.ndarray, layer: str, candidate: np.ndarray,
                allowance: np.ndarray) -> str | None:
    """A scaled layer, transposed / reinterpreted weights or a shifted bias at ``layer``
    (``hidden.pre`` or ``logits``), given the candidate's counterpart of that layer."""
    chain = layer_chain(weights, x)
    ref = chain[layer]
    bias = weights.b1 if layer == "hidden.pre" else weights.b2
    title = "hidden layer" if layer == "hidden.pre" else "output layer"
    c = candidate.astype(np.float64)
    for label, base in (("weights", ref - bias), ("layer", ref)):
        denom = float(np.sum(base * base))
        if denom == 0.0:
            continue
        offset = bias if label == "weights" else 0.0
        k = float(np.sum((c - offset) * base) / denom)
        if abs(k - 1.0) > 1e-6 and _fits(c, k * base + offset, allowance * max(1.0, abs(k))):
            k_text = repr(float(f"{k:.4g}"))  # 2.0, 1.05, 1.001
            return f"a scaled layer (k = {k_text}): the {title}'s {label} times {k_text}"
    w = weights.w1 if layer == "hidden.pre" else weights.w2
    inputs = np.asarray(x, np.float64) if layer == "hidden.pre" else chain["hidden.relu"]
    swapped = w.T.reshape(w.shape)
    if _fits(c, inputs @ swapped.T + bias, allowance):
        square = w.shape[0] == w.shape[1]
        return (f"transposed weights of a square layer: the {title} uses W.T" if square else
                f"reinterpreted weights: the {title} reads W.T reshaped to W's shape {list(w.shape)}")
    shift = c - ref
    same_on_every_row = np.all(np.ptp(shift, axis=0) <= 2 * np.max(allowance, axis=0))
    if len(shift) >= _BIAS_ROWS and same_on_every_row and np.max(np.abs(shift)) > np.max(allowance):
        return f"a shifted bias: the {title}'s bias is off by up to {float(np.max(np.abs(shift.mean(axis=0)))):.3g}"
    return None


def served_head_problem(kind: str, outputs: np.ndarray, sum_tolerance: float = 1e-4) -> str | None:
    """Without a reference: why ``outputs`` (on realistic positions) are not what the NeuralService
    promises its clients (a probability row per position for a policy, a value in [0, 1]),
    naming the likely cause; None when they are. A policy's rows must sum to 1 within
    ``sum_tolerance`` (looser for a reduced-precision variant: INT8 rows sum to ~0.99)."""
    y = np.asarray(outputs, np.float64)
    if y.ndim != 2 or (kind == "value" and y.shape[1] != 1):
        want = "[N, 1] (one value per position)" if kind == "value" else "[N, moves]"
        return f"its output has shape {list(y.shape)}, not {want}: is it the other model?"
    low, high = float(np.min(y)), float(np.max(y))
    if kind == "policy":
        sums = y.sum(axis=1)
        if low >= 0.0 and high <= 1.0 and np.all(np.abs(sums - 1.0) <= sum_tolerance):
            return None
        with np.errstate(over="ignore"):
            exp_sums = np.exp(y).sum(axis=1)
        if high <= 1e-6 and np.all(np.abs(exp_sums - 1.0) <= 1e-4):
            return ("log-softmax instead of softmax: the outputs are log-probabilities "
                    f"(values {low:.3g} to {high:.3g}; rows of exp(output) sum to 1)")
        return (f"the final softmax is missing: rows sum to {float(sums.min()):.3g}-{float(sums.max()):.3g} "
                f"and values run from {low:.3g} to {high:.3g}, not probabilities")
    if low >= 0.0 and high <= 1.0:
        return None
    if low >= -1.0 and high <= 1.0:
        return f"tanh instead of sigmoid: values run from {low:.3g} to {high:.3g}, not in [0, 1]"
    return f"the final sigmoid is missing: values run from {low:.3g} to {high:.3g}, not in [0, 1]"


def batchnorm_cause(title: str, block, given: np.ndarray, candidate: np.ndarray) -> str | None:
    """Batch-norm statistics or epsilon at block ``title``: does the reference block, run on its
    own input with one BatchNorm's statistics replaced (identity variance, zero mean, both) or
    its epsilon changed, reproduce the candidate's output of that block?"""
    import copy

    import torch

    norms = [name for name, m in block.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    variants = {"running_var set to 1": {"running_var": 1.0}, "running_mean set to 0": {"running_mean": 0.0},
                "identity statistics": {"running_var": 1.0, "running_mean": 0.0},
                "epsilon 1e-3": {"eps": 1e-3}, "epsilon 0": {"eps": 0.0}}
    x = torch.from_numpy(np.ascontiguousarray(given))
    for name in norms:
        for label, change in variants.items():
            trial = copy.deepcopy(block).eval()
            norm = trial.get_submodule(name)
            for attr, value in change.items():
                if attr == "eps":
                    norm.eps = value
                else:
                    getattr(norm, attr).fill_(value)
            with torch.inference_mode():
                guess = trial(x).double().numpy()
            if _fits(candidate, guess, 1e-4 * float(np.max(np.abs(guess)))):
                return f"batch-norm statistics or epsilon: block {title!r} matches with its BatchNorm {name!r} {label}"
    return None


def scaled_weights_cause(title: str, block, given: np.ndarray, candidate: np.ndarray, then=None) -> str | None:
    """A convolution's or linear layer's weights times k at block ``title``: does the reference
    block (followed by ``then``, a BatchNorm the exporter folded into it), run on its own
    input with its weight scaled by the best-fitting k, reproduce the candidate's tensor?
    (Both are affine in the weight: the output is ``k * base + offset``, so k is one
    least-squares ratio.)"""
    import copy

    import torch

    if not isinstance(block, (torch.nn.modules.conv._ConvNd, torch.nn.Linear)) or not (
            then is None or isinstance(then, torch.nn.modules.batchnorm._BatchNorm)):
        return None
    chain = torch.nn.Sequential(block, *([then] if then is not None else [])).eval()
    unweighted = copy.deepcopy(chain)
    x = torch.from_numpy(np.ascontiguousarray(given))
    with torch.inference_mode():
        unweighted[0].weight.zero_()
        offset = unweighted(x).double().numpy()
        base = chain(x).double().numpy() - offset
    denom = float(np.sum(base * base))
    if denom == 0.0 or candidate.shape != base.shape:
        return None
    k = float(np.sum((candidate.astype(np.float64) - offset) * base) / denom)
    guess = k * base + offset
    if abs(k - 1.0) <= 1e-6 or not _fits(candidate, guess, 1e-4 * float(np.max(np.abs(guess)))):
        return None
    k_text = repr(float(f"{k:.4g}"))  # 2.0, 1.05, 1.001
    folded = f" (folded with the {type(then).__name__} after it)" if then is not None else ""
    return f"a scaled layer (k = {k_text}): the {title}'s weights{folded} times {k_text}"


def block_cause(blocks, index: int, counterparts) -> str | None:
    """The likely cause at block ``index`` of a PyTorch reference compared block by block
    (``blocks``: (title, module, input, output) per block; ``counterparts[i]``: the
    candidate's tensor matched to block ``i``, or None): batch-norm statistics, scaled
    weights, or scaled weights of a convolution the exporter folded the next block, a
    BatchNorm consuming its output, into (judged on that BatchNorm's counterpart)."""
    title, module, given, out = blocks[index]
    mine = counterparts[index]
    if mine is not None:
        cause = batchnorm_cause(title, module, given, mine) or scaled_weights_cause(title, module, given, mine)
        if cause:
            return cause
    following = blocks[index + 1] if index + 1 < len(blocks) else None
    if following is None or counterparts[index + 1] is None or not np.array_equal(out, following[2]):
        return None
    return scaled_weights_cause(title, module, given, counterparts[index + 1], then=following[1])
