import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rps_infer.errors import ModelFormatError
from rps_infer.formats import gojson
from rps_infer.nets.mlp import random_weights

from .conftest import shared_params


def _policy_obj():
    w = random_weights(np.random.default_rng(0), "policy", input_size=4, hidden_size=3, output_size=2)
    return gojson.to_dict(w)


def _value_obj():
    w = random_weights(np.random.default_rng(1), "value", input_size=4, hidden_size=3)
    return gojson.to_dict(w)


@pytest.mark.parametrize("path", shared_params())
def test_reads_every_go_trained_file(path):
    w = gojson.read(path)
    raw = json.loads(path.read_text())
    assert w.kind == ("policy" if "policy" in path.name else "value")
    assert (w.input_size, w.hidden_size) == (81, raw["hiddenSize"])
    assert w.output_size == (9 if w.kind == "policy" else 1)
    np.testing.assert_array_equal(w.w1, np.array(raw["weightsInputHidden"]))


@pytest.mark.parametrize("path", shared_params())
def test_round_trip_of_go_trained_file_is_exact_in_values(path, tmp_path):
    w = gojson.read(path)
    gojson.write(w, tmp_path / "copy.json")
    # Equal as numbers (Go's 1e-7 and Python's 1e-07 parse to the same float; 0 == 0.0).
    assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(path.read_text())


@given(
    kind=st.sampled_from(["policy", "value"]),
    inputs=st.integers(1, 128), hidden=st.integers(1, 256), outputs=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1e-6, 1.0, 1e3]),
)
def test_write_then_read_is_exact(tmp_path_factory, kind, inputs, hidden, outputs, seed, scale):
    w = random_weights(np.random.default_rng(seed), kind, inputs, hidden,
                       outputs if kind == "policy" else 1, scale)
    path = tmp_path_factory.mktemp("rt") / "m.json"
    back = gojson.read(gojson.write(w, path))
    assert back.kind == kind
    for name in ("w1", "b1", "w2", "b2"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))


def test_reads_go_number_spellings_and_integer_bias(tmp_path):
    text = json.dumps(_value_obj()).replace('"biasOutput": ', '"biasOutput": 0, "x": ')
    text = text.replace('"biasesHidden": [', '"biasesHidden": [1e-7, ', 1)
    obj = json.loads(text)
    obj["biasesHidden"] = obj["biasesHidden"][:3]
    path = tmp_path / "v.model"
    path.write_text(json.dumps(obj).replace("1e-07", "1e-7"))
    w = gojson.read(path)
    assert w.b2.tolist() == [0.0] and w.b1[0] == 1e-7


def test_kind_is_detected_and_can_be_overridden(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_policy_obj()))
    assert gojson.read(path).kind == "policy"
    with pytest.raises(ModelFormatError, match="biasOutput"):
        gojson.read(path, kind="value")


def _mutate(obj, key, value):
    obj = dict(obj)
    if value is KeyError:
        del obj[key]
    else:
        obj[key] = value
    return obj


MALFORMED = {
    "missing-key": (_mutate(_policy_obj(), "biasesHidden", KeyError), "biasesHidden", "missing"),
    "missing-value-bias": (_mutate(_value_obj(), "biasOutput", KeyError), "biasOutput", "missing"),
    "size-wrong-type": (_mutate(_policy_obj(), "hiddenSize", "3"), "hiddenSize", "positive integer"),
    "size-bool": (_mutate(_policy_obj(), "inputSize", True), "inputSize", "positive integer"),
    "size-zero": (_mutate(_policy_obj(), "hiddenSize", 0), "hiddenSize", "positive integer"),
    "size-negative": (_mutate(_policy_obj(), "outputSize", -2), "outputSize", "positive integer"),
    "size-fraction": (_mutate(_policy_obj(), "inputSize", 4.5), "inputSize", "positive integer"),
    "sizes-disagree": (_mutate(_policy_obj(), "hiddenSize", 4), "weightsInputHidden", "4 rows"),
    "ragged-rows": (_mutate(_policy_obj(), "weightsInputHidden", [[0.1] * 4, [0.1] * 3, [0.1] * 4]),
                    "weightsInputHidden[1]", "4 numbers"),
    "row-not-list": (_mutate(_policy_obj(), "weightsHiddenOutput", [1.0, 2.0]), "weightsHiddenOutput[0]", "list"),
    "matrix-not-list": (_mutate(_policy_obj(), "weightsInputHidden", {"a": 1}), "weightsInputHidden", "rows"),
    "string-weight": (_mutate(_policy_obj(), "biasesOutput", [0.1, "x"]), "biasesOutput[1]", "a number"),
    "null-weight": (_mutate(_policy_obj(), "biasesHidden", [0.1, None, 0.2]), "biasesHidden[1]", "a number"),
    "bias-list-for-value": (_mutate(_value_obj(), "biasOutput", [0.1]), "biasOutput", "a number"),
    "root-not-object": ([1, 2, 3], "<root>", "JSON object"),
}


@pytest.mark.parametrize(("obj", "field", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_file_names_the_field(tmp_path, obj, field, expected):
    path = tmp_path / "bad.model"
    path.write_text(json.dumps(obj))
    with pytest.raises(ModelFormatError) as info:
        gojson.read(path)
    assert info.value.field == field
    assert expected in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("   \n", "empty"), ("{not json", "valid JSON"), ('{"a": NaN}', "NaN"),
     ('{"a": Infinity}', "Infinity"), ('{"a": -Infinity}', "Infinity"), ("\udcff", "UTF-8")],
    ids=["empty", "blank", "not-json", "nan", "inf", "minus-inf", "bad-utf8"],
)
def test_unreadable_file_raises_model_format_error(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ModelFormatError, match=expected):
        gojson.read(path)


def test_missing_file_raises_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="no such file"):
        gojson.read(tmp_path / "nope.model")


def test_nan_weights_are_refused_on_write_and_nothing_is_written(tmp_path):
    w = random_weights(np.random.default_rng(0), "value", 3, 2)
    w.w1[0, 0] = np.nan
    with pytest.raises(ModelFormatError, match="NaN"):
        gojson.write(w, tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []
