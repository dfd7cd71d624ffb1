"""The declared suite: parity, then latency, of every model x backend x device x batch size
the project declares (``[tool.rps_infer]`` of its ``pyproject.toml``, or ``rps_infer.toml``).

Each case's callable is only the backend's ``infer`` on inputs prepared outside the timing;
its output is checked against the model's reference first, so nothing is timed that
computes the wrong function (:class:`rps_infer.bench.cases.CaseBuilder`).
"""

from __future__ import annotations

import pytest

from rps_infer.bench.cases import CaseParityError, CaseUnavailableError, CaseUnsupportedError
from rps_infer.bench.pytest_plugin import run_case


def test_parity(rps_case_builder, case):
    """Against the model's reference (numpy-fp64, torch-fp32, the native classifier, the declared
    reference file) at batch sizes 1 and 3 (a batch the export never saw) and the case's own."""
    entry = rps_case_builder.entry(case.model)
    try:
        backend = rps_case_builder.backend(case.model, case.backend)
    except (CaseUnavailableError, CaseUnsupportedError) as exc:
        pytest.skip(str(exc))
    except CaseParityError as exc:
        pytest.fail(str(exc), pytrace=False)
    report = entry.check_parity(backend, case.backend, sorted({1, 3, case.batch}), seed=11,
                                reference=rps_case_builder.reference(case.model), reference_label=entry.reference,
                                candidate_label=case.id)
    assert report, str(report)


def test_latency(benchmark, request, case):
    """In-process latency of one call, gated."""
    run_case(benchmark, request, case.description(), group="inprocess", batch=case.batch)
