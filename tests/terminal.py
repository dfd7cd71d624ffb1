"""The CLI run on a pseudo-terminal (so it draws its progress bar), for tests/test_progress.py and
tests/test_signals.py."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable


def on_a_terminal(argv: list[str], watch: Callable[[bytes, subprocess.Popen], None] | None = None,
                  timeout: float = 120.0) -> tuple[int, str]:
    """Run ``rps-infer ARGV`` with stdin, stdout and stderr on a pseudo-terminal; ``watch(drawn,
    proc)`` sees what it drew so far at every turn. Returns (exit code, all it drew)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rps_infer.cli", *argv], stdin=follower, stdout=follower,
                            stderr=follower)
    os.close(follower)
    drawn = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if watch is not None:
                watch(drawn, proc)
            if select.select([leader], [], [], 0.05)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout), drawn.decode(errors="replace")
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
