import json

import numpy as np
import pytest

from rps_infer.compare import PRESETS, compare, tolerance


def _probs(rows=4, cols=9, seed=0):
    x = np.random.default_rng(seed).random((rows, cols))
    return x / x.sum(axis=1, keepdims=True)


def test_identical_outputs_pass_and_result_is_truthy():
    p = _probs()
    result = compare({"output": p}, {"output": p.copy()})
    assert result and result.passed
    (o,) = result.outputs
    assert o.max_abs == 0 and o.failing == 0 and o.top_move_agreement == 1.0


def test_error_just_outside_atol_plus_rtol_fails_and_just_inside_passes():
    b = np.array([[0.5, 0.25]])
    bound = 1e-5 + 1e-4 * b
    assert compare({"y": b}, {"y": b + 0.99 * bound})
    result = compare({"y": b}, {"y": b + 1.01 * bound})
    assert not result
    assert result.outputs[0].failing == 2


def test_required_tolerances_are_the_smallest_that_pass():
    b = np.array([[1.0, 2.0, 4.0]])
    a = b + np.array([[1e-3, 0.0, 0.0]])
    o = compare({"y": b}, {"y": a}).outputs[0]
    assert o.required_atol == pytest.approx(1e-3 - 1e-4 * 1.0)
    assert o.required_rtol == pytest.approx((1e-3 - 1e-5) / 1.0)
    assert compare({"y": b}, {"y": a}, tolerance("fp32", atol=o.required_atol * 1.0001))
    assert compare({"y": b}, {"y": a}, tolerance("fp32", rtol=o.required_rtol * 1.0001))
    assert not compare({"y": b}, {"y": a}, tolerance("fp32", atol=o.required_atol * 0.999))


def test_allowance_widens_the_bound_elementwise():
    b = np.array([[0.5, 0.5]])
    a = b + np.array([[1e-3, 1e-3]])
    assert not compare({"y": b}, {"y": a})
    result = compare({"y": b}, {"y": a}, allowance={"y": np.array([[2e-3, 0.0]])})
    assert not result and result.outputs[0].failing == 1
    assert compare({"y": b}, {"y": a}, allowance={"y": np.array([[2e-3, 2e-3]])})


def test_every_structural_problem_is_reported_not_only_the_first():
    ref = {"probs": np.zeros((2, 9)), "value": np.zeros((2, 1)), "extra_ref": np.zeros(1)}
    cand = {"probs": np.zeros((3, 9)), "value": np.zeros((2, 1)), "surprise": np.zeros(1)}
    result = compare(ref, cand)
    assert not result
    text = "\n".join(result.problems)
    assert "lacks output(s) ['extra_ref']" in text
    assert "unexpected output(s) ['surprise']" in text
    assert "output 'probs': shape [3, 9]" in text
    assert [o.name for o in result.outputs] == ["value"] and result.outputs[0].passed


def test_nan_in_candidate_fails():
    b = _probs()
    a = b.copy()
    a[1, 2] = np.nan
    result = compare({"y": b}, {"y": a})
    assert not result and result.outputs[0].failing == 1 and result.outputs[0].worst_index == [1, 2]


def test_matching_non_finite_values_agree():
    b = np.array([np.inf, -np.inf, np.nan, 1.0])
    assert compare({"y": b}, {"y": b.copy()})
    assert not compare({"y": b}, {"y": np.array([np.inf, np.inf, np.nan, 1.0])})


def test_top_move_agreement_is_reported_for_policies():
    b = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    a = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    o = compare({"p": b}, {"p": a}).outputs[0]
    assert o.top_move_agreement == 0.5 and not o.passed


def test_result_serialises_to_json_and_prints_a_report():
    b = _probs()
    result = compare({"output": b}, {"output": b + 0.1}, reference_label="numpy", candidate_label="onnx")
    data = json.loads(result.to_json())
    assert data["passed"] is False and data["outputs"][0]["name"] == "output"
    text = str(result)
    assert text.startswith("FAIL: onnx vs numpy") and "minimum required tolerance" in text
    assert "max abs 0.1" in text
    assert result.failures() and "output 'output'" in result.failures()[0]


def test_unknown_preset_is_refused_and_presets_are_ordered_by_looseness():
    with pytest.raises(KeyError, match="unknown tolerance preset"):
        tolerance("fp8")
    assert PRESETS["fp32"].atol < PRESETS["fp16"].atol < PRESETS["int8"].atol


def test_image_metrics_and_psnr_presets():
    rng = np.random.default_rng(0)
    b = rng.random((2, 3, 8, 8))
    close = b + 1e-6
    o = compare({"img": b}, {"img": close}, "image-fp32").outputs[0]
    assert o.psnr_db == pytest.approx(120.0, abs=0.1) and o.cosine == pytest.approx(1.0) and o.passed
    noisy = b + rng.normal(0, 3e-3, b.shape)  # ~50 dB: fails fp32 (60 dB), passes fp16 (40 dB)
    r32, r16 = compare({"img": b}, {"img": noisy}, "image-fp32"), compare({"img": b}, {"img": noisy}, "image-fp16")
    assert not r32 and r16
    assert 45 < r16.outputs[0].psnr_db < 55 and "PSNR" in str(r16)
    assert not compare({"img": b}, {"img": b + 0.05}, "image-int8")  # 26 dB < 35 dB
