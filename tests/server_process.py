"""`rps-infer serve` as a subprocess for tests: dies with the test process even if that crashes."""

from __future__ import annotations

import contextlib
import ctypes
import signal

from rps_infer.serving import launch


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even if it crashes (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess(launch.ServerProcess):
    """``rps-infer serve --port 0 ARGS`` (``--port`` in ARGS wins)."""

    def __init__(self, *args: str, timeout: float = 120.0) -> None:
        super().__init__(launch.serve_command(*args), timeout, preexec_fn=_die_with_parent)
