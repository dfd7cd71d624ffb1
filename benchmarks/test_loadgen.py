"""The shipped suite's `test_loadgen` (rps_infer/benchmarks/test_loadgen.py), collected here so
`pytest benchmarks` runs it from a checkout."""

from rps_infer.benchmarks.test_loadgen import test_the_load_generator_agrees_with_an_independent_client  # noqa: F401
