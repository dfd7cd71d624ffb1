"""The shipped suite's `test_calibration` (rps_infer/benchmarks/test_calibration.py),
collected here so `pytest benchmarks` runs it from a checkout (`pytest --pyargs
rps_infer.benchmarks` runs it anywhere)."""

from rps_infer.benchmarks.test_calibration import test_calibration  # noqa: F401 - collected by pytest
