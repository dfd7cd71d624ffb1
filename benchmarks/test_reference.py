"""Reference points that put the suite's numbers in context (reported, never failed).

Keras ``model.predict`` per call is what many codebases do; the ``tf`` backend calls
the same model through a ``tf.function`` instead.
"""

from __future__ import annotations

import pytest

from benchmarks.conftest import run_case
from rps_infer.game import realistic_positions


@pytest.mark.parametrize("model", ["policy"])
def test_keras_predict(benchmark, request, built_zoo, model):
    if request.config.getoption("--backends") and "tf" not in request.config.getoption("--backends"):
        pytest.skip("tf backends not selected")
    from rps_infer.convert import kerasfile

    keras_model = kerasfile.read_model(built_zoo[model].artifacts()["keras"])
    x = realistic_positions(1, seed=1)
    run_case(benchmark, request, lambda: keras_model.predict(x, verbose=0), group="reference", batch=1,
             extra_info={"backend": "keras-predict", "device": "cpu"})
