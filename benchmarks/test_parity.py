"""The shipped suite's `test_parity` (rps_infer/benchmarks/test_parity.py),
collected here so `pytest benchmarks` runs it from a checkout (`pytest --pyargs
rps_infer.benchmarks` runs it anywhere)."""

from rps_infer.benchmarks.test_parity import test_parity  # noqa: F401 - collected by pytest
