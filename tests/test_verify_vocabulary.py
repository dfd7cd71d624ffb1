"""A verify report speaks the model's language: moves and positions for the RPS nets only;
classes, argmax and rows for a classifier or any other model."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rps_infer.cli import main
from rps_infer.formats import open_model
from rps_infer.nets.mlp import random_weights
from rps_infer.verify import compare_models

from .onnx_graphs import IR_VERSION, OPSET, mlp_graph

GAME_WORDS = re.compile(r"\b(move|moves|position|positions|board)\b", re.IGNORECASE)


def _save(nodes, inputs, outputs, inits, path, metadata=None) -> str:
    graph = helper.make_graph(nodes, "user", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _linear_classifier(path, w: np.ndarray, metadata=None) -> str:
    """Four features -> softmax over three classes (too small a graph to be the RPS MLP)."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probabilities"], axis=-1)]
    inits = [numpy_helper.from_array(w.astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0.1, -0.2, 0.05], np.float32), "b")]
    return _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                 [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])], inits, path,
                 metadata)


def _cnn(path, scale: float) -> str:
    """An image in, an image out: Conv -> Sigmoid."""
    w = np.random.default_rng(1).normal(size=(3, 3, 3, 3)).astype(np.float32) * np.float32(scale)
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["conv"], ["output"])]
    return _save(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, 8, 8])],
                 [numpy_helper.from_array(w, "w")], path)


def _verify(capsys, reference, candidate) -> tuple[int, str]:
    code = main(["verify", reference, candidate, "--batch-sizes", "1,16", "--layers"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def weights() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 3))


def test_a_generic_classifier_is_judged_by_argmax_over_rows_without_game_words(tmp_path, capsys, weights):
    reference = _linear_classifier(tmp_path / "ref.onnx", weights)
    assert _verify(capsys, reference, _linear_classifier(tmp_path / "same.onnx", weights))[0] == 0
    swapped = weights[:, [1, 0, 2]]  # the first two classes trade places: argmax differs on many rows
    code, text = _verify(capsys, reference, _linear_classifier(tmp_path / "swapped.onnx", swapped))
    assert code == 1, text
    assert "argmax agrees" in text and "decisions: argmax agrees on" in text, text
    assert re.search(r"mismatch: batch 16: argmax differs on \d+ of \d+ clear rows", text), text
    assert not GAME_WORDS.search(text), GAME_WORDS.findall(text)


def test_a_digits_classifier_names_its_predicted_class(tmp_path, weights):
    family = {"rps_infer.family": "classifier"}
    reference = open_model(_linear_classifier(tmp_path / "ref.onnx", weights, family))
    candidate = open_model(_linear_classifier(tmp_path / "swapped.onnx", weights[:, [1, 0, 2]], family))
    report = compare_models(reference, candidate, batch_sizes=(16,))
    text = report.render() + "\n".join(report.failures())
    assert not report and "predicted class agrees" in text and "predicted class differs on" in text, text
    assert not GAME_WORDS.search(text), GAME_WORDS.findall(text)


def test_an_image_model_report_has_no_game_words(tmp_path, capsys):
    reference = _cnn(tmp_path / "ref.onnx", 1.0)
    code, text = _verify(capsys, reference, _cnn(tmp_path / "scaled.onnx", 1.01))
    assert code == 1 and "PSNR" in text, text
    assert not GAME_WORDS.search(text), GAME_WORDS.findall(text)


def test_the_rps_policy_still_speaks_of_top_moves_and_positions(tmp_path, capsys):
    w = random_weights(np.random.default_rng(3), "policy", hidden_size=16)
    reference = str(mlp_graph(w, tmp_path / "ref.onnx"))
    code, text = _verify(capsys, reference, str(mlp_graph(w, tmp_path / "same.onnx")))
    assert code == 0, text
    assert "top move agrees" in text and re.search(r"decisions: top move agrees on \d+ of \d+ positions", text), text
