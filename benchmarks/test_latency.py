"""The shipped suite's `test_latency` (rps_infer/benchmarks/test_latency.py),
collected here so `pytest benchmarks` runs it from a checkout (`pytest --pyargs
rps_infer.benchmarks` runs it anywhere)."""

from rps_infer.benchmarks.test_latency import test_latency  # noqa: F401 - collected by pytest
