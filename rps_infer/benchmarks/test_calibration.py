"""Calibration: a bare single-thread ``InferenceSession.run`` of the zoo policy at batch 1 and 64.

Not our code: in A/B mode both trees run the very same thing, so these are the
gate's controls (a ratio far from 1 would say the harness favours one side); in
stored mode they put the machine's speed next to the baseline's.
"""

from __future__ import annotations

import pytest

from rps_infer.bench.pytest_plugin import run_case


@pytest.mark.calibration
@pytest.mark.parametrize("batch", [1, 64], ids=["b1", "b64"])
def test_calibration(benchmark, request, batch):
    run_case(benchmark, request, {"kind": "calibration", "batch": batch}, group="calibration", batch=batch)
