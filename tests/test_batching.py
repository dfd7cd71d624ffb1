"""The adaptive batcher, through its public API."""

import threading
import time

import numpy as np
import pytest

from rps_infer.serving.batching import AdaptiveBatcher


class SlowDouble:
    """A fake model that takes a while per call and records the batch sizes it saw."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.calls: list[int] = []

    def __call__(self, feeds):
        self.calls.append(feeds["x"].shape[0])
        time.sleep(self.delay)
        return {"y": feeds["x"] * 2, "rows": np.arange(len(feeds["x"]))}


def _concurrently(fn, args_list):
    results = [None] * len(args_list)
    errors = []

    def run(i, args):
        try:
            results[i] = fn(*args)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def test_single_caller_runs_directly_with_its_own_rows():
    model = SlowDouble(0)
    batcher = AdaptiveBatcher(model, max_batch_size=64)
    out = batcher.infer({"x": np.ones((3, 2), np.float32)})
    assert model.calls == [3] and out["y"].tolist() == [[2, 2]] * 3


def test_concurrent_calls_are_coalesced_and_split_back_in_order():
    model = SlowDouble(0.02)
    batches = []
    batcher = AdaptiveBatcher(model, max_batch_size=64, on_batch=batches.append)
    inputs = [np.full((i + 1, 2), i, np.float32) for i in range(12)]
    results, errors = _concurrently(lambda x: batcher.infer({"x": x}), [(x,) for x in inputs])
    assert not errors
    for x, r in zip(inputs, results, strict=True):
        assert r["y"].tolist() == (x * 2).tolist()  # each caller gets exactly its rows back
        assert r["rows"].shape == (len(x),)
    assert sum(model.calls) == sum(len(x) for x in inputs)
    assert max(model.calls) > 12  # some calls carried several requests
    assert batches == model.calls


def test_batches_respect_max_batch_size_and_signatures():
    model = SlowDouble(0.02)
    batcher = AdaptiveBatcher(model, max_batch_size=4)
    args = [(np.ones((2, 3), np.float32),) for _ in range(6)] + [(np.ones((1, 5), np.float32),) for _ in range(3)]
    results, errors = _concurrently(lambda x: batcher.infer({"x": x}), args)
    assert not errors and all(r is not None for r in results)
    assert max(model.calls) <= 4


def test_timeout_waits_for_more_requests():
    model = SlowDouble(0)
    batcher = AdaptiveBatcher(model, max_batch_size=8, timeout_us=200_000)
    _, errors = _concurrently(lambda x: batcher.infer({"x": x}), [(np.ones((1, 1), np.float32),)] * 4)
    assert not errors and len(model.calls) < 4


def test_an_error_reaches_every_caller_of_that_batch_and_the_batcher_recovers():
    state = {"fail": True}

    def flaky(feeds):
        time.sleep(0.02)
        if state["fail"]:
            raise RuntimeError("backend exploded")
        return {"y": feeds["x"]}

    batcher = AdaptiveBatcher(flaky, max_batch_size=64)
    _, errors = _concurrently(lambda x: batcher.infer({"x": x}), [(np.ones((1, 1), np.float32),)] * 5)
    assert len(errors) == 5 and all("exploded" in str(e) for e in errors)
    state["fail"] = False
    assert batcher.infer({"x": np.ones((2, 1), np.float32)})["y"].shape == (2, 1)


def test_rejects_nothing_itself_but_propagates_model_errors():
    batcher = AdaptiveBatcher(lambda feeds: (_ for _ in ()).throw(ValueError("bad")), max_batch_size=2)
    with pytest.raises(ValueError, match="bad"):
        batcher.infer({"x": np.ones((1, 1))})
