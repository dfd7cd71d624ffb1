"""Start `rps-infer serve` as a subprocess on a free 127.0.0.1 port, and stop it."""

from __future__ import annotations

import contextlib
import ctypes
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RPS_INFER = str(Path(sys.executable).parent / "rps-infer")
READY = re.compile(r"rps-infer serving on ([\d.]+):(\d+)")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even if it crashes (Linux)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """A running server; ``target`` is HOST:PORT. Use as a context manager."""

    def __init__(self, *args: str, timeout: float = 120.0) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in kill()
        cmd = [RPS_INFER, "serve", "--port", "0", *args] if "--port" not in args else [RPS_INFER, "serve", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = READY.search(line)
            if match:
                self.target = f"{match.group(1)}:{match.group(2)}"
                return
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"server did not become ready: {line!r}\n{self.log()}")

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        if self.stderr.closed:
            return self._log
        self.stderr.seek(0)
        return self.stderr.read()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Make sure nothing is left behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        if not self.stderr.closed:
            self._log = self.log()
            self.stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()
