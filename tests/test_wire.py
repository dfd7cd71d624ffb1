"""The fast NeuralService codecs decode and encode exactly what protobuf does."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rps_infer.errors import InvalidRequestError
from rps_infer.serving import wire
from rps_infer.serving.protos import neural_pb2

floats32 = st.floats(width=32, allow_nan=False)
rows = st.lists(st.lists(floats32, min_size=0, max_size=90), min_size=0, max_size=70)


def _unpacked_features(values, field=1) -> bytes:
    """features as unpacked fixed32 fields: legal, but not what protobuf writes."""
    return b"".join(bytes([(field << 3) | 5]) + np.float32(v).tobytes() for v in values)


@given(rows=rows, model_type=st.sampled_from(["", "policy", "value", "x" * 200]))
def test_batch_decode_equals_protobuf(rows, model_type):
    message = neural_pb2.BatchPredictRequest(inputs=[neural_pb2.InputFeatures(features=r) for r in rows],
                                             model_type=model_type)
    features, got_type = wire.decode_batch(message.SerializeToString())
    assert got_type == model_type
    want = [np.array(r, np.float32) for r in rows]
    got = list(features)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.tobytes() == w.tobytes()


@given(rows=st.lists(st.lists(floats32, min_size=81, max_size=81), min_size=1, max_size=10),
       odd=st.integers(0, 9), order=st.booleans())
def test_batch_decode_handles_unusual_encodings(rows, odd, order):
    """An unpacked row in the middle and model_type first are still decoded exactly."""
    odd %= len(rows)
    parts = []
    for i, r in enumerate(rows):
        if i == odd:
            inner = _unpacked_features(r)
        else:
            inner = neural_pb2.InputFeatures(features=r).SerializeToString()
        parts.append(b"\x0a" + wire.varint(len(inner)) + inner)
    model_type = b"\x12\x05value"
    data = (model_type + b"".join(parts)) if order else (b"".join(parts) + model_type)
    features, got_type = wire.decode_batch(data)
    reference = neural_pb2.BatchPredictRequest.FromString(data)
    assert got_type == reference.model_type == "value"
    want = np.array([list(i.features) for i in reference.inputs], np.float32)
    assert np.asarray(features).tobytes() == want.tobytes()


@given(values=st.lists(floats32, max_size=100), split=st.integers(0, 100), model_type=st.sampled_from(["", "policy"]))
def test_predict_decode_equals_protobuf_even_for_split_packed_chunks(values, split, model_type):
    split = min(split, len(values))
    data = (neural_pb2.PredictRequest(features=values[:split]).SerializeToString()
            + neural_pb2.PredictRequest(features=values[split:], model_type=model_type).SerializeToString())
    features, got_type = wire.decode_predict(data)
    reference = neural_pb2.PredictRequest.FromString(data)
    assert got_type == reference.model_type
    assert features.shape == (1, len(values))
    assert features.tobytes() == np.array(reference.features, np.float32).tobytes()


@pytest.mark.parametrize("data", [b"\x0a\xff", b"\x0a\x05\x0a\x03ab", b"\xff\xff\xff", b"\x12\x10short"])
def test_undecodable_bytes_raise_invalid_request(data):
    with pytest.raises(InvalidRequestError, match="not a valid"):
        wire.decode_batch(data)
    with pytest.raises(InvalidRequestError, match="not a valid"):
        wire.decode_predict(data)


@given(values=st.lists(floats32, max_size=80))
def test_encode_values_parses_back(values):
    parsed = neural_pb2.BatchPredictResponse.FromString(wire.encode_values(np.array(values, np.float32)))
    assert [o.value for o in parsed.outputs] == pytest.approx(values, rel=0, abs=0, nan_ok=True)


@given(n=st.integers(0, 70), k=st.integers(1, 31), seed=st.integers(0, 1000))
def test_encode_policies_parses_back(n, k, seed):
    p = np.random.default_rng(seed).random((n, k)).astype(np.float32)
    best = np.argmax(p, axis=1) if n else np.zeros(0, np.int64)
    parsed = neural_pb2.BatchPredictResponse.FromString(wire.encode_policies(p, best))
    assert [list(o.probabilities) for o in parsed.outputs] == p.tolist()
    assert [o.best_move for o in parsed.outputs] == best.tolist()
