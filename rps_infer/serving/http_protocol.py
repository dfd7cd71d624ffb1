"""uvicorn's httptools connection, fit for production: no Nagle stall, one write per
response, slow clients timed out, and the request duration clients see.

- ``TCP_NODELAY`` on every accepted socket. asyncio sets it itself only on sockets created
  with ``IPPROTO_TCP``; without it a response's second segment waits for the client's
  delayed ACK, 40 ms on every request of a reused connection (benchmarks/README.md).
- A response's status line and headers are held until its body is written, so a response
  leaves in one write (uvicorn writes them separately).
- Timeouts (:class:`HttpLimits`): from a connection's start, or a request's first byte, to the
  end of its headers; between two pieces of a body; idle between requests (uvicorn's
  keep-alive timeout). A request cut off gets 408 and the connection closes.
- Metrics: each request's duration from its first byte read to its last byte written,
  labelled by the route the application named in the scope (``SCOPE_LABELS``).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rps_infer.errors import InvalidRequestError, RequestTimeoutError
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.rest import error

log = logging.getLogger("rps_infer.serving")
SCOPE_LABELS = "rps_infer.labels"  # (route, model, status) the application put in the ASGI scope


@dataclass(frozen=True)
class HttpLimits:
    """How large and how slow an HTTP request may be."""

    max_body_bytes: int = 64 << 20
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0


class _OneWritePerResponse:
    """A transport that holds a response's status line and headers until its first body write."""

    __slots__ = ("held", "transport")

    def __init__(self, transport) -> None:
        self.transport = transport
        self.held = b""

    def write(self, data: bytes) -> None:
        if not self.held and data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100 "):
            self.held = data
            return
        if self.held:
            data, self.held = self.held + data, b""
        self.transport.write(data)

    def close(self) -> None:
        if self.held:
            self.transport.write(self.held)
            self.held = b""
        self.transport.close()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the module's additions; made by
    ``functools.partial(BoundedHttpProtocol, limits=..., metrics=...)`` as uvicorn's ``http``."""

    def __init__(self, *args, limits: HttpLimits, metrics: NullMetrics, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.metrics = metrics
        self.deadline = None
        self.first_byte = 0.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm(self.limits.header_timeout_s, "headers")

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.first_byte = time.perf_counter()
        self._arm(self.limits.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = _OneWritePerResponse(self.transport)
        self._arm(self.limits.body_timeout_s, "body")  # on_message_complete disarms it

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.limits.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        if self.metrics.enabled and self.cycle is not None:
            route, model, status = self.cycle.scope.get(SCOPE_LABELS, ("-", "-", "-"))
            self.metrics.request("http", route, model, status, time.perf_counter() - self.first_byte)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """What the HTTP parser refused, as v2 JSON (uvicorn's is text), then close."""
        self._write_and_close(error(InvalidRequestError(f"{msg} (not parseable HTTP/1.1)")), "Bad Request")

    def _write_and_close(self, reply, reason: str) -> None:
        lines = [f"HTTP/1.1 {reply.status} {reason}", *(f"{k}: {v}" for k, v in reply.headers.items()),
                 f"content-length: {len(reply.body)}", "connection: close", "", ""]
        self.transport.write("\r\n".join(lines).encode() + reply.body)
        self.transport.close()

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._timed_out, phase, seconds)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _timed_out(self, phase: str, seconds: float) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        started = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if self.parser is None or started or (phase == "headers" and not self.first_byte):
            self.transport.close()  # no request byte yet, a response under way, or gone
        else:
            log.debug("HTTP client %s too slow: the request's %s did not arrive within %g s", self.client, phase,
                      seconds)
            reply = error(RequestTimeoutError(
                f"the request's {phase} did not arrive within {seconds:g} s; the connection is closed"))
            if self.metrics.enabled:
                self.metrics.request("http", "-", "-", str(reply.status), time.perf_counter() - self.first_byte)
            self._write_and_close(reply, "Request Timeout")


__all__ = ["SCOPE_LABELS", "BoundedHttpProtocol", "HttpLimits"]
