"""Latency of every zoo model x backend x device x batch size, in-process.

The timed callable is only the backend's ``infer`` on realistic inputs prepared
outside the timing. The output of the timed backend is checked against the
model's reference once, so nothing is timed that computes the wrong function.
"""

from __future__ import annotations

from benchmarks.conftest import run_case
from rps_infer.verify import compare_backends, make_feeds


def test_latency(benchmark, request, backends, case):
    entry = request.getfixturevalue("built_zoo")[case.model]
    backend = backends.get(case.model, case.backend)
    feeds = make_feeds(backend.input_specs, case.batch, seed=case.batch, generator=entry.inputs)
    reference = entry.reference_backend()
    parity = compare_backends(reference, backend, batch_sizes=(case.batch,),
                              tol=entry.tolerance_for(case.backend), weights=getattr(reference, "weights", None),
                              generator=entry.inputs)
    assert parity, str(parity)
    info = backend.describe()
    run_case(benchmark, request, lambda: backend.infer(feeds), group="inprocess", batch=case.batch,
             extra_info={k: info.get(k) for k in ("backend", "device", "framework", "version",
                                                  "active_providers", "threads", "intra_op_threads",
                                                  "inter_op_threads", "precision", "io_binding", "compile",
                                                  "channels_last")})
