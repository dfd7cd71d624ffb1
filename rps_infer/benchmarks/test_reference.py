"""Reference points that put the suite's numbers in context (reported, never failed).

Keras ``model.predict`` per call is what many codebases do; the ``tf`` backend calls
the same model through a ``tf.function`` instead.
"""

from __future__ import annotations

import pytest

from rps_infer.bench.pytest_plugin import run_case, wants_tensorflow


@pytest.mark.parametrize("model", ["policy"])
def test_keras_predict(benchmark, request, model):
    if not wants_tensorflow(request.config):
        pytest.skip("tf backends not selected")
    run_case(benchmark, request, {"kind": "keras_predict", "model": model}, group="reference", batch=1)
