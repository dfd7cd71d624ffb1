"""`rps-infer serve` as a subprocess for tests: dies with the test process even if that crashes."""

from __future__ import annotations

import os
import socket
import sys

from rps_infer.serving import launch

# Runs in a fresh single-threaded interpreter: ask Linux for SIGTERM when the test process
# dies (PR_SET_PDEATHSIG survives exec), then become the server. Not a preexec_fn: that runs
# between fork and exec of a process with gRPC and ONNX Runtime threads, where dlopen (ctypes)
# can wait forever on a lock some other thread held at the fork; a fresh-clone run hung so.
_DIE_WITH_PARENT = (
    "import contextlib, ctypes, os, signal, sys\n"
    "with contextlib.suppress(OSError):\n"
    "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() == int(sys.argv[1]):\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
)


class ServerProcess(launch.ServerProcess):
    """``rps-infer serve --port 0 ARGS`` (``--port`` in ARGS wins)."""

    def __init__(self, *args: str, timeout: float = 120.0) -> None:
        command = launch.serve_command(*args)
        super().__init__([sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command], timeout)


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (for servers given fixed ports)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
