"""``rps-infer serve``'s process model: one server (:func:`serve`), or with ``--workers N`` a
supervisor that forks N worker processes sharing the gRPC and HTTP ports (SO_REUSEPORT),
before any gRPC object exists; restarts a worker that dies; forwards SIGTERM; serves the
metrics of all workers on the one ``--metrics-port``."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time

from rps_infer.errors import RpsInferError
from rps_infer.serving import poller, security
from rps_infer.serving.config import ServerConfig
from rps_infer.serving.metrics import prepare_pool, serve_pool, worker_died
from rps_infer.serving.server import HTTP_READY_LINE, READY_LINE, check_ports_free, run_worker

log = logging.getLogger("rps_infer.serving")


def start_worker(config: ServerConfig, slot: int) -> int:
    """Fork worker ``slot``; returns its pid once it serves (it writes its port to a pipe)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(read_fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = 1
        try:
            code = run_worker(config, reuse_port=True, ready_fd=write_fd, slot=slot)
        except BaseException:
            log.exception("worker failed")
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as ready:
        line = ready.readline()
    if not line:
        raise RpsInferError(f"worker {pid} failed to start")
    return pid


def supervise(config: ServerConfig) -> int:
    """Run the pool until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
    children: dict[int, int] = {}
    stopping = threading.Event()

    def on_signal(signum, frame) -> None:
        stopping.set()
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    metrics_folder = None
    if config.metrics_port:
        metrics_folder = tempfile.mkdtemp(prefix="rps-infer-metrics-")
        prepare_pool(metrics_folder)
    try:
        for slot in range(config.workers):
            children[start_worker(config, slot)] = slot
        if metrics_folder is not None:
            serve_pool(config.metrics_port, config.host)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if config.http_port is not None:
            print(HTTP_READY_LINE.format(host=config.host, port=config.http_port), flush=True)
        print(READY_LINE.format(host=config.host, port=config.port), f"({config.workers} workers)", flush=True)
        return _wait(config, children, stopping, metrics_folder is not None)
    finally:
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)


def _wait(config: ServerConfig, children: dict[int, int], stopping: threading.Event, metrics: bool) -> int:
    """Reap workers until none is left, restarting any that dies before a stop was asked for."""
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        code = os.waitstatus_to_exitcode(status)
        if metrics:
            worker_died(pid)
        if stopping.is_set():
            exit_code = exit_code or max(code, 0)
        elif slot is not None:
            log.warning("worker %d exited with %d; restarting it", pid, code)
            began = time.monotonic()
            new = start_worker(config, slot)
            children[new] = slot
            log.warning("worker %d (slot %d) restarted in %.2f s", new, slot, time.monotonic() - began)
    return exit_code


def serve(config: ServerConfig) -> int:
    """Run one server, or ``config.workers`` processes sharing the port (SO_REUSEPORT)."""
    log.info(poller.choose(config.grpc_poller))
    security.check(config.security, config.host)
    security.read_token(config.security.auth_token_file)  # a bad file fails here, before any worker
    security.server_credentials(config.security)
    check_ports_free(config)
    if config.workers <= 1:
        return run_worker(config, reuse_port=False)
    if config.port == 0 or config.http_port == 0:
        raise RpsInferError("--port 0 and --http-port 0 cannot be used with --workers above 1: "
                            "workers share fixed ports")
    return supervise(config)
