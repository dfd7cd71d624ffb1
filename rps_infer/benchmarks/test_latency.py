"""Latency of every zoo model x backend x device x batch size, in-process.

The timed callable is only the backend's ``infer`` on realistic inputs prepared
outside the timing; its output is checked against the model's reference first, so
nothing is timed that computes the wrong function (:class:`rps_infer.bench.gate.worker.CaseBuilder`).
"""

from __future__ import annotations

from rps_infer.bench.suite import run_case


def test_latency(benchmark, request, case):
    run_case(benchmark, request, case.description(), group="inprocess", batch=case.batch)
