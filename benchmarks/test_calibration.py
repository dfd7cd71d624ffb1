"""Calibration: a bare single-thread ``InferenceSession.run`` of the zoo policy at batch 1 and 64.

It is the yardstick twice over: the gate scales a kin machine's baseline by it, and
``onnxrt-cpu`` policy b1 must stay within 1.25x (or +2 us) of it, which shows how
much the harness and the backend wrapper add.
"""

from __future__ import annotations

import pytest

from benchmarks.conftest import run_case
from rps_infer.game import realistic_positions


@pytest.mark.calibration
@pytest.mark.parametrize("batch", [1, 64], ids=["b1", "b64"])
def test_calibration(benchmark, request, built_zoo, batch):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(str(built_zoo["policy"].onnx_path), options,
                                   providers=["CPUExecutionProvider"])
    feeds = {"input": realistic_positions(batch, seed=batch)}
    run_case(benchmark, request, lambda: session.run(None, feeds), group="calibration", batch=batch,
             extra_info={"backend": "bare-onnxruntime", "device": "cpu", "intra_op_threads": 1})
