"""The shipped suite's `test_grpc` (rps_infer/benchmarks/test_grpc.py),
collected here so `pytest benchmarks` runs it from a checkout (`pytest --pyargs
rps_infer.benchmarks` runs it anywhere)."""

from rps_infer.benchmarks.test_grpc import test_grpc  # noqa: F401 - collected by pytest
