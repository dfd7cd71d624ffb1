"""Which I/O path gRPC core takes in a server process: chosen once, before ``grpc`` is imported.

grpcio 1.85 reads and writes sockets on its EventEngine threads by default: each call's bytes
are handed from an ``event_engine`` thread to the thread serving the completion queue and back.
Its older ``iomgr`` path polls on the completion-queue thread itself, one hand-off fewer per call.
Measured with the independent client on a 2-core AMD EPYC (benchmarks/README.md, "The gRPC I/O
path"): with ``iomgr`` the service spent 29-156 us less CPU per call at 8 and 32 clients and
7-69 us less at one (medians of paired rounds, two or three runs each); the gated suite's A/B
measured its p50 at 0.83-0.95x in every gRPC case. The bare echo gained too.
``rps-infer serve`` uses it by default; the echoes offer both, so the floor is the fastest.

The switch is the ``GRPC_EXPERIMENTS`` environment variable, read when gRPC core starts, which
is when ``grpc`` is imported: a later change has no effect. A user's own ``GRPC_EXPERIMENTS``
wins. Forked workers and child processes inherit the choice.
"""

from __future__ import annotations

import os
import sys

POLLERS = ("iomgr", "event-engine")
# The experiments that move listeners and connections to EventEngine, turned off.
IOMGR_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


_chosen: str | None = None  # the line of the choice made in this process, before grpc was imported


def choose(poller: str) -> str:
    """Make this process's gRPC use ``poller`` (one of :data:`POLLERS`); returns a line for the
    log saying which path is in effect and why. Once made, the choice stays (later calls return it)."""
    global _chosen
    if poller not in POLLERS:
        raise ValueError(f"gRPC poller must be one of {', '.join(POLLERS)}, got {poller!r}")
    if _chosen is not None:
        return _chosen
    own = os.environ.get("GRPC_EXPERIMENTS")
    if own is not None and own != IOMGR_EXPERIMENTS:
        line = f"gRPC I/O as the environment's GRPC_EXPERIMENTS={own} says (--grpc-poller {poller} not applied)"
    elif "grpc" in sys.modules:
        # Too late to switch, and unknown what gRPC core read at import: say so, claim nothing.
        return f"gRPC I/O not chosen: grpc was imported before --grpc-poller {poller} could apply"
    elif poller == "iomgr":
        os.environ["GRPC_EXPERIMENTS"] = IOMGR_EXPERIMENTS
        line = f"gRPC I/O: iomgr, polling on the completion-queue thread (GRPC_EXPERIMENTS={IOMGR_EXPERIMENTS})"
    else:
        os.environ.pop("GRPC_EXPERIMENTS", None)  # e.g. inherited from an rps-infer serve that started us
        line = "gRPC I/O: event-engine (grpcio's default)"
    _chosen = line
    return line
