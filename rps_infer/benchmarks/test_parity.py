"""Parity of everything the suite times, against the model's reference from the manifest,
at batch sizes 1 and 3 (a batch the export never saw) and at the case's own batch."""

from __future__ import annotations

import pytest

from rps_infer.bench.gate.worker import CaseParityError, CaseUnavailableError, CaseUnsupportedError


def test_parity(rps_case_builder, case):
    entry = rps_case_builder.entry(case.model)
    try:
        backend = rps_case_builder.backend(case.model, case.backend)
    except (CaseUnavailableError, CaseUnsupportedError) as exc:
        pytest.skip(str(exc))
    except CaseParityError as exc:
        pytest.fail(str(exc), pytrace=False)
    # against the manifest's reference: numpy-fp64, torch-fp32 or the native classifier
    report = entry.check_parity(backend, case.backend, sorted({1, 3, case.batch}), seed=11,
                                reference_label=entry.reference, candidate_label=case.id)
    assert report, str(report)
