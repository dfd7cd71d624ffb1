"""Random and mutated model files: each either loads or raises a ModelFormatError with a
message, never another exception, and a conversion never leaves a partial file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rps_infer.cli import main
from rps_infer.convert import convert
from rps_infer.errors import ModelFormatError, RpsInferError
from rps_infer.formats import gojson
from rps_infer.runtime import open_backend

REPO = Path(__file__).resolve().parent.parent
POLICY = (REPO / "fixtures" / "policy.json").read_bytes()
DIGITS = [i for i, b in enumerate(POLICY) if chr(b).isdigit()]
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=4), max_leaves=12)


@st.composite
def mutated_go_json(draw) -> bytes:
    """The policy fixture with a digit changed (still a valid model), truncated, with bytes
    flipped, a key dropped or a value replaced; or a random JSON document."""
    kind = draw(st.sampled_from(["digit", "truncate", "flip", "drop-key", "replace-value", "random"]))
    if kind == "digit":
        data = bytearray(POLICY)
        data[draw(st.sampled_from(DIGITS))] = ord(str(draw(st.integers(0, 9))))
        return bytes(data)
    if kind == "truncate":
        return POLICY[:draw(st.integers(0, len(POLICY) - 1))]
    if kind == "flip":
        data = bytearray(POLICY)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "random":
        return json.dumps(draw(json_values)).encode()
    document = json.loads(POLICY)
    key = draw(st.sampled_from(sorted(document)))
    if kind == "drop-key":
        del document[key]
    else:
        document[key] = draw(json_values)
    return json.dumps(document).encode()


def test_mutated_go_json_loads_or_names_what_is_wrong(tmp_path):
    path = tmp_path / "model.json"
    outcomes = {"loaded": 0, "refused": 0}

    @settings(FUZZ, max_examples=600)
    @given(data=mutated_go_json())
    def run(data):
        path.write_bytes(data)
        weights, message = None, None
        try:
            weights = gojson.read(path)
        except ModelFormatError as exc:
            message = str(exc)
        if weights is None:
            assert message, "a ModelFormatError must say what is wrong"
            outcomes["refused"] += 1
        else:
            assert weights.input_size > 0 and weights.output_size > 0
            outcomes["loaded"] += 1

    run()
    assert outcomes["refused"] > 300 and outcomes["loaded"] > 20 and sum(outcomes.values()) >= 600
    print(f"\nfuzz Go JSON: {sum(outcomes.values())} cases: {outcomes}")


def test_converting_mutated_go_json_never_leaves_a_partial_file(tmp_path):
    source = tmp_path / "in" / "model.json"
    source.parent.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    counts = {"converted": 0, "refused": 0}

    @settings(FUZZ, max_examples=25)
    @given(data=mutated_go_json(), target=st.sampled_from(["onnx", "torch"]))
    def run(data, target):
        source.write_bytes(data)
        out = out_dir / ("model.onnx" if target == "onnx" else "model.pt")
        out.unlink(missing_ok=True)
        message = None
        try:
            convert(source, target, out)
        except RpsInferError as exc:
            message = str(exc)
        if message is not None:
            assert message and not out.exists()
            counts["refused"] += 1
        else:
            assert out.is_file()
            counts["converted"] += 1
        assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []  # no temp file left

    run()
    assert sum(counts.values()) >= 25 and counts["converted"] and counts["refused"]
    print(f"\nfuzz convert: {counts}")


# The strategy draws a small recipe, not the bytes: Hypothesis reprs what it draws,
# and a 70 kB model in every repr trips its "overly large repr" warning (an error here).
GARBLES = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("random"), st.binary(max_size=2000)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                  st.integers(0, 255)), min_size=1, max_size=16)),
)


def garble(good: bytes, recipe) -> bytes:
    """Apply one drawn recipe to the good model bytes."""
    kind, arg = recipe
    if kind == "truncate":
        return good[:int(arg * len(good))]
    if kind == "random":
        return arg
    data = bytearray(good)
    for where, value in arg:
        data[int(where * len(data))] = value
    return bytes(data)


@pytest.fixture(scope="module")
def good_onnx(built_zoo) -> bytes:
    return built_zoo["policy"].onnx_path.read_bytes()


def test_truncated_or_garbled_onnx_is_a_model_format_error(good_onnx, tmp_path):
    path = tmp_path / "model.onnx"
    counts = {"loaded": 0, "refused": 0}

    @settings(FUZZ, max_examples=300)
    @given(recipe=GARBLES)
    def run(recipe):
        path.write_bytes(garble(good_onnx, recipe))
        message = None
        try:
            with open_backend(path) as backend:
                backend.activate()
        except ModelFormatError as exc:
            message = str(exc)
        if message is not None:
            assert message
            counts["refused"] += 1
        else:
            counts["loaded"] += 1  # a flipped byte in a weight still loads (parity would catch it)

    run()
    assert counts["refused"] > 100 and sum(counts.values()) >= 300
    print(f"\nfuzz ONNX load: {counts}")


def test_verify_answers_garbled_onnx_with_exit_2_and_one_line(good_onnx, tmp_path, capsys, built_zoo):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(good_onnx[: len(good_onnx) // 2])
    assert main(["verify", str(built_zoo["policy"].source), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx" in err and "Traceback" not in err
