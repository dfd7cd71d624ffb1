"""Assertions for a user's own test suite (the pytest plugin's ``rps_parity`` fixture uses them).

    from rps_infer.testing import assert_parity

    def test_my_export():
        assert_parity("model.pt", "model.onnx", inputs={"image": x})
"""

from __future__ import annotations

from typing import Any

from rps_infer.api import verify_models
from rps_infer.verify import ParityReport


def assert_parity(reference: Any, candidate: Any, **options: Any) -> ParityReport:
    """:func:`rps_infer.verify_models` that raises ``AssertionError`` with the full report (the
    layer table, where the layers diverge, the likely cause) when the models disagree."""
    report = verify_models(reference, candidate, **options)
    if not report:
        raise AssertionError(report.render(layers=True))
    return report
