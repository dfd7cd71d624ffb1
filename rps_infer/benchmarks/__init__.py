"""The benchmark suite, shipped with the package.

:mod:`~rps_infer.benchmarks.test_models` is the declared suite of any repository: every
model x backend x device x batch size the project declares (``[tool.rps_infer]``), parity
checked before it is timed, judged by the latency gate. A repository collects it with a
test file of its own (``rps-infer init`` writes ``tests/test_models.py``)::

    pytest tests/test_models.py --benchmark-only [--gate]

The other modules are this project's own reference points (calibration, gRPC round trips,
Keras ``predict``, the load generator's agreement with an independent client); they need
the RPS models and skip without them. ``pytest --pyargs rps_infer.benchmarks`` collects all
of it. Options, fixtures and hooks: the pytest plugin :mod:`rps_infer.bench.pytest_plugin`.
"""
