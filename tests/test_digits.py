"""The digits classifiers: safe native files, ONNX conversion proven on the whole test split,
and verify rejecting a planted broken export."""

import ast
from pathlib import Path

import numpy as np
import onnx
import pytest

from rps_infer import zoo
from rps_infer.cli import main
from rps_infer.errors import ModelFormatError
from rps_infer.formats import detect_format, native, open_model
from rps_infer.nets import digits
from rps_infer.verify import compare_backends

REPO = Path(__file__).resolve().parent.parent
NAMES = ("digits-logreg", "digits-rf", "digits-xgb")
TEST_ROWS = 360


def test_the_split_is_fixed_and_stratified():
    x_train, x_test, _, y_test = digits.split()
    assert x_test.shape == (TEST_ROWS, 64) and x_train.shape == (1437, 64) and x_test.dtype == np.float32
    assert np.bincount(y_test).min() >= 35  # every class in the test split
    np.testing.assert_array_equal(digits.digit_rows(3, offset=TEST_ROWS - 1), x_test[[-1, 0, 1]])


def test_models_build_digits_names_the_family():
    entries = zoo.load_zoo()
    assert [e.name for e in zoo.select(entries, ["digits"])] == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_the_native_model_on_the_whole_test_split(built_zoo, name):
    entry = built_zoo[name]
    native, onnx_model = entry.reference_backend(), entry.backend("onnxrt-cpu")
    report = compare_backends(native, onnx_model, batch_sizes=(1, 64, TEST_ROWS), tol=entry.tolerance,
                              generator="digits")
    assert report, str(report)
    result = report.results[TEST_ROWS]
    errors = {o.name: o for o in result.outputs}
    assert errors["label"].max_abs == 0
    assert errors["probabilities"].max_abs <= 1e-6  # measured <= 4.8e-7 (benchmarks/README.md)
    assert [s.dtype for s in onnx_model.output_specs] == ["int64", "float32"]


@pytest.mark.parametrize("name", NAMES)
def test_native_labels_are_what_predict_says(built_zoo, name):
    entry = built_zoo[name]
    model = native.read_native(entry.artifacts()["native"])
    x_test = digits.split()[1]
    labels = entry.reference_backend().infer({"input": x_test})["label"]
    np.testing.assert_array_equal(labels, model.predict(x_test))
    assert (labels == digits.split()[3]).mean() > 0.95  # they learned the digits


def test_verify_proves_native_vs_onnx_and_rejects_planted_breaks(built_zoo, tmp_path, capsys):
    rf, xgb = built_zoo["digits-rf"], built_zoo["digits-xgb"]
    assert main(["verify", str(xgb.artifacts()["native"]), str(xgb.onnx_path), "--batch-sizes", "1,360"]) == 0
    assert "proba-tree" in capsys.readouterr().out
    # Another model entirely: labels differ.
    assert main(["verify", str(rf.artifacts()["native"]), str(xgb.onnx_path), "--batch-sizes", "360"]) == 1
    assert "output 'label'" in capsys.readouterr().err
    # A subtle break: the leaves of one tree of 100 moved by 1e-3 (what a buggy converter
    # might do): probabilities move by 1e-5, labels stay.
    graph = onnx.load(str(rf.onnx_path))
    trees = next(n for n in graph.graph.node if n.op_type == "TreeEnsembleClassifier")
    attributes = {a.name: a for a in trees.attribute}
    for i, tree in enumerate(attributes["class_treeids"].ints):
        if tree == 0:
            attributes["class_weights"].floats[i] += 1e-3
    onnx.save(graph, str(tmp_path / "leaf.onnx"))
    assert main(["verify", str(rf.artifacts()["native"]), str(tmp_path / "leaf.onnx"),
                 "--batch-sizes", "360"]) == 1
    assert "probabilities" in capsys.readouterr().err


def test_xgboost_json_is_told_apart_from_go_json(built_zoo):
    assert detect_format(built_zoo["digits-xgb"].artifacts()["native"]) == "xgboost"
    assert detect_format(REPO / "fixtures" / "policy.json") == "gojson"
    assert open_model(built_zoo["digits-rf"].artifacts()["native"]).format == "skops"


def test_skops_files_with_foreign_types_are_refused_before_loading(tmp_path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    skops.io.dump(FunctionTransformer(func=print), str(tmp_path / "evil.skops"))
    with pytest.raises(ModelFormatError, match="scikit-learn types only") as info:
        native.read_native(tmp_path / "evil.skops")
    assert "builtins.print" in str(info.value)
    (tmp_path / "junk.skops").write_bytes(b"not a zip archive")
    with pytest.raises(ModelFormatError, match="skops archive"):
        native.read_native(tmp_path / "junk.skops")


def test_no_pickle_or_joblib_anywhere_in_the_package():
    imported = set()
    for path in (REPO / "rps_infer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"pickle", "cPickle", "dill", "joblib", "cloudpickle"}
