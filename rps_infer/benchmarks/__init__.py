"""The benchmark suite, shipped with the package: every zoo model x backend x device x batch
size, parity checked before it is timed, and the latency gate.

    pytest --pyargs rps_infer.benchmarks [--zoo my_zoo.toml] --benchmark-only [--gate]

Its options, fixtures and hooks are the pytest plugin :mod:`rps_infer.bench.suite`.
"""
