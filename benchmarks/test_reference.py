"""The shipped suite's `test_reference` (rps_infer/benchmarks/test_reference.py),
collected here so `pytest benchmarks` runs it from a checkout (`pytest --pyargs
rps_infer.benchmarks` runs it anywhere)."""

from rps_infer.benchmarks.test_reference import test_keras_predict  # noqa: F401 - collected by pytest
