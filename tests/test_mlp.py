"""The float64 reference forward and the float32 rounding-error allowance."""

import numpy as np
import pytest

from rps_infer.compare import compare
from rps_infer.formats import gojson
from rps_infer.game import realistic_positions
from rps_infer.nets import mlp
from rps_infer.nets.mlp import float32_output_allowance, forward, random_weights

from .conftest import SHARED, SKIP_SHARED, shared_params


def _float32_forward(w, x):
    """The same network evaluated entirely in float32 (what every framework does)."""
    h = np.maximum(x.astype(np.float32) @ w.w1.T.astype(np.float32) + w.b1.astype(np.float32), 0)
    z = h @ w.w2.T.astype(np.float32) + w.b2.astype(np.float32)
    if w.kind == "value":
        return 1 / (1 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_policy_sums_to_one_and_value_lies_in_unit_interval(rng):
    x = realistic_positions(64, 3)
    p = forward(random_weights(rng, "policy", scale=30.0), x)
    v = forward(random_weights(rng, "value", scale=30.0), x)
    assert p.shape == (64, 9) and np.abs(p.sum(axis=1) - 1).max() < 1e-12
    assert v.shape == (64, 1) and ((v >= 0) & (v <= 1)).all()


@pytest.mark.parametrize("path", shared_params())
def test_float32_evaluation_of_real_models_lies_within_the_allowance(path):
    w = gojson.read(path)
    x = realistic_positions(2000, 11)
    ref = forward(w, x)
    result = compare({"output": ref}, {"output": _float32_forward(w, x)}, "fp32",
                     {"output": float32_output_allowance(w, x)})
    assert result, str(result)


def test_without_the_allowance_the_trained_h128_policy_fails_fp32():
    """The noise floor is real: plain atol/rtol rejects a correct float32 evaluation."""
    path = SHARED / "rps_h128_g1000_e10_20250512-101607_policy.model"
    if not path.is_file():
        pytest.skip(SKIP_SHARED)
    w = gojson.read(path)
    x = realistic_positions(2000, 11)
    assert not compare({"output": forward(w, x)}, {"output": _float32_forward(w, x)}, "fp32")


def test_allowance_vanishes_where_outputs_saturate_so_bugs_stay_visible(rng):
    w = random_weights(rng, "value", scale=50.0)
    x = realistic_positions(256, 2)
    v = forward(w, x)
    allow = float32_output_allowance(w, x)
    saturated = (v < 1e-6) | (v > 1 - 1e-6)
    assert saturated.any()
    assert allow[saturated].max() < 1e-5
    logits = mlp._logits(w, x.astype(np.float64))  # what an export without the sigmoid returns
    assert not compare({"output": v}, {"output": logits}, "fp32", {"output": allow})


def test_odds_change_allowance_matches_a_direct_perturbation():
    p = np.array([0.5, 0.9, 1e-9])
    delta = np.array([0.1, 0.1, 0.1])
    allow = mlp.odds_change_allowance(p, delta)
    odds = p / (1 - p)
    worst = np.maximum(np.abs(odds * np.exp(delta) / (1 + odds * np.exp(delta)) - p),
                       np.abs(odds * np.exp(-delta) / (1 + odds * np.exp(-delta)) - p))
    assert allow == pytest.approx(worst, rel=1e-9)
