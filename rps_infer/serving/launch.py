"""Start a server as a subprocess, wait for its readiness line, and stop it.

Used by the load generator (the echo server), the benchmark suite and the tests.
Servers listen on a free 127.0.0.1 port (``--port 0``) and print
``rps-infer serving on HOST:PORT`` once ready.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time

from rps_infer.errors import RpsInferError

READY = re.compile(r"serving on ([\d.]+):(\d+)")
HTTP_READY = re.compile(r"rps-infer http on ([\d.]+):(\d+)")  # printed before READY with --http-port


def serve_command(*args: str) -> list[str]:
    """``rps-infer serve --port 0 ARGS`` with this interpreter (``--port`` in ARGS wins)."""
    port = [] if "--port" in args else ["--port", "0"]
    return [sys.executable, "-m", "rps_infer.cli", "serve", *port, *args]


def echo_command(*args: str) -> list[str]:
    """The bare grpcio echo server on a free port (ARGS: ``--model NAME=FILE.onnx`` ...)."""
    return [sys.executable, "-m", "rps_infer.serving.echo", "--port", "0", *args]


# The bare echoes, sync and aio, each on grpcio's default I/O path and on the iomgr path the
# service takes: the transport floor is the fastest of them, so no slower echo can make the
# service look close to it (the aio echo on iomgr measured 1.04x the sync one's p50 here).
ECHOES = {"echo-sync": (), "echo-aio": ("--aio",), "echo-sync-iomgr": ("--grpc-poller", "iomgr"),
          "echo-aio-iomgr": ("--aio", "--grpc-poller", "iomgr")}


def echo_commands(*args: str) -> dict[str, list[str]]:
    """Name -> command of every echo in :data:`ECHOES`, each given ``args`` too."""
    return {name: echo_command(*flags, *args) for name, flags in ECHOES.items()}


def naive_command(policy, value) -> list[str]:
    """The naive reference server (:mod:`rps_infer.serving.naive`) on a free port."""
    return [sys.executable, "-m", "rps_infer.serving.naive", "--port", "0", "--policy", str(policy),
            "--value", str(value)]


class ServerProcess:
    """A running server; ``target`` is HOST:PORT, ``http_target`` the REST API's HOST:PORT (or
    None), ``pid`` its process. A context manager."""

    def __init__(self, command: list[str], timeout: float = 120.0) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in kill()
        self._log = ""
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        line = ""
        self.http_target = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if http := HTTP_READY.search(line):
                self.http_target = f"{http.group(1)}:{http.group(2)}"
            match = READY.search(line)
            if match:
                self.target = f"{match.group(1)}:{match.group(2)}"
                return
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise RpsInferError(f"server did not become ready ({' '.join(command)}): {line!r}\n{self.log()[-3000:]}")

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        if self.stderr.closed:
            return self._log
        self.stderr.seek(0)
        return self.stderr.read()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit code (killing it if it does not stop in time)."""
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
