"""The v2 REST API on uvicorn + Starlette, in the gRPC server's process, over the same models.

Routes are thin: each hands the request's parts to :mod:`rps_infer.serving.rest` and sends
back its :class:`~rps_infer.serving.rest.Reply`. Small requests are answered inline in the
event loop: the served models take microseconds to a few milliseconds, less than a thread
hand-off would add for the MLPs; a body above ``OFFLOAD_BYTES`` is decoded and inferred on a
thread of its own, one at a time, so probes and small requests are answered meanwhile and
memory stays bounded. ``--workers N`` is the way to use more cores (every worker shares the
HTTP port, SO_REUSEPORT, as it shares the gRPC one). The connection handling (no Nagle stall,
timeouts, metrics from first byte to last) is :mod:`rps_infer.serving.http_protocol`.
uvicorn was chosen by measurement (``scripts/http_stacks.py``, benchmarks/README.md).

The server runs in a thread with its own event loop (:class:`HttpServer`), so the gRPC server
and its signal handling stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import hmac
import logging
import multiprocessing
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from rps_infer.errors import (
    AuthenticationError,
    MethodNotAllowedError,
    RequestTooLargeError,
    RouteNotFoundError,
    RpsInferError,
)
from rps_infer.serving import rest, v2json
from rps_infer.serving.dataplane import DataPlane
from rps_infer.serving.http_protocol import SCOPE_LABELS, BoundedHttpProtocol, HttpLimits
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.security import SecurityConfig
from rps_infer.serving.status import identity

log = logging.getLogger("rps_infer.serving")
OPEN_PATHS = ("/v2/health/",)  # probes need no token, as gRPC's health service
OFFLOAD_BYTES = 1 << 20  # bodies above this are answered off the event loop


def build_app(plane: DataPlane, token: str | None = None, limits: HttpLimits | None = None) -> Starlette:
    """The Starlette application serving the v2 REST API over ``plane``."""
    routes = RestRoutes(token, limits or HttpLimits())
    models, versioned = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    table = [routes.route("/v2/health/live", "GET", lambda *_: rest.live(plane), "live"),
             routes.route("/v2/health/ready", "GET", lambda *_: rest.ready(plane), "ready"),
             routes.route("/v2", "GET", lambda *_: rest.server_metadata(plane), "metadata")]
    for prefix in (models, versioned):
        table += [routes.route(f"{prefix}/ready", "GET", functools.partial(rest.model_ready, plane), "model_ready"),
                  routes.route(prefix, "GET", functools.partial(rest.model_metadata, plane), "model_metadata"),
                  routes.route(f"{prefix}/infer", "POST", functools.partial(rest.infer, plane), "infer")]
    app = Starlette(routes=table, exception_handlers={404: no_route, 405: no_route})
    app.state.routes = routes  # HttpServer.stop closes its pools
    return app


class RestRoutes:
    """Starlette routes in front of :mod:`rps_infer.serving.rest`'s answers: the token check,
    the bounded body, large bodies off the loop, the reply and its metrics labels."""

    def __init__(self, token: str | None, limits: HttpLimits) -> None:
        self.expected = f"Bearer {token}".encode() if token else None
        self.limits = limits
        self.large = ThreadPoolExecutor(1, thread_name_prefix="rps-infer-http-large")
        self.parser: ProcessPoolExecutor | None = None  # started with the first large body

    def parse_separately(self) -> ProcessPoolExecutor:
        """The process that parses large JSON bodies (one at a time: memory stays bounded)."""
        if self.parser is None:
            self.parser = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=v2json.die_with_parent)
        return self.parser

    def close(self) -> None:
        """Stop the large-body thread and process."""
        self.large.shutdown(wait=False, cancel_futures=True)
        if self.parser is not None:
            self.parser.shutdown(wait=False, cancel_futures=True)

    def answer_large(self, infer, args: tuple) -> rest.Reply:
        """``infer(*args)`` (:func:`rest.infer`: the one POST route) for a large body, its JSON
        parsed in the parser process; then hand the freed memory back to the system."""
        try:
            return infer(*args, separately=self.parse_separately())
        except BrokenProcessPool as exc:  # the parser died (killed for memory?): a new one next time
            self.parser = None
            return rest.error(exc)
        except Exception as exc:
            return rest.error(exc)
        finally:
            _release_memory()

    def route(self, path: str, method: str, answer, name: str) -> Route:
        """``answer(name, version[, body, header_length])`` on ``method path``."""

        async def endpoint(request: Request) -> Response:
            params = request.path_params
            args = (params.get("name"), params.get("version"))
            try:
                self.check_token(request)
                if method != "POST":
                    reply = answer(*args)
                else:
                    body = await read_body(request, self.limits.max_body_bytes)
                    length = request.headers.get(rest.HEADER_LENGTH)
                    if len(body) <= OFFLOAD_BYTES:
                        reply = answer(*args, body, length)
                    else:
                        reply = await asyncio.get_running_loop().run_in_executor(
                            self.large, self.answer_large, answer, (*args, body, length))
            except ClientDisconnect:
                log.debug("HTTP client %s went away before its request to %s was read", request.client,
                          request.url.path)
                return send(request, rest.Reply(499, b""), name)
            except Exception as exc:  # every error a status, through the one error map
                reply = rest.error(exc)
            return send(request, reply, name)

        return Route(path, endpoint, methods=[method])

    def check_token(self, request: Request) -> None:
        """Refuse a call without the bearer token (probes need none, as gRPC's health service)."""
        if self.expected is not None and not request.url.path.startswith(OPEN_PATHS):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                raise AuthenticationError("this server needs the header 'Authorization: Bearer <token>' "
                                          "(see --auth-token-file)")


def send(request: Request, reply: rest.Reply, route: str) -> Response:
    """``reply`` as a response, labelled for the metrics the connection records."""
    request.scope[SCOPE_LABELS] = (route, request.path_params.get("name") or "-", str(reply.status))
    headers = {**reply.headers, **identity()}
    if reply.status == 413:  # the rest of the body is not read: the connection cannot go on
        headers["connection"] = "close"
    return Response(reply.body, reply.status, headers=headers)


async def no_route(request: Request, exc) -> Response:
    """A path the API does not have (404) or a method its path does not take (405), as v2 JSON."""
    if exc.status_code == 405:
        error = MethodNotAllowedError(f"{request.url.path} does not take {request.method}; it takes "
                                      f"{(exc.headers or {}).get('Allow', 'another method')}")
    else:
        error = RouteNotFoundError(f"no route {request.url.path}; the v2 REST API has /v2, /v2/health/live, "
                                   "/v2/health/ready and /v2/models/{name}[/versions/{v}][/ready|/infer]")
    reply = rest.error(error)
    reply.headers |= exc.headers or {}
    return send(request, reply, "-")


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body, refused (413) once it is known to pass ``limit`` bytes: from its
    Content-Length before a byte is read, or while a chunked body streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"the request body of {int(declared)} bytes is above the server's limit of "
                                   f"{limit} bytes (--max-message-mb)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLargeError(f"the request body passed the server's limit of {limit} bytes "
                                       "(--max-message-mb) while it streamed in")
    return body


@functools.cache
def _libc():
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    return None


def _release_memory() -> None:
    # glibc keeps freed heap pages (and raises its mmap threshold after large frees), so a
    # process that decoded one 64 MB body would hold its peak for good without this.
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening TCP socket (``port`` 0: a free one); shared by the workers with ``reuse_port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RpsInferError(f"cannot bind the HTTP port {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    return sock


class HttpServer:
    """uvicorn serving ``app`` on ``sock`` from a daemon thread; TLS from the gRPC flags, the
    connections bounded by ``limits``."""

    def __init__(self, app, sock: socket.socket, security: SecurityConfig | None = None,
                 limits: HttpLimits | None = None, metrics: NullMetrics | None = None) -> None:
        import ssl

        import uvicorn

        tls = {}
        if security is not None and security.tls_cert is not None:
            tls = {"ssl_certfile": str(security.tls_cert), "ssl_keyfile": str(security.tls_key)}
            if security.tls_client_ca is not None:
                tls |= {"ssl_ca_certs": str(security.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        limits = limits or HttpLimits()
        protocol = functools.partial(BoundedHttpProtocol, limits=limits, metrics=metrics or NullMetrics())
        config = uvicorn.Config(app, http=protocol, lifespan="off", access_log=False, log_level="warning",
                                timeout_keep_alive=limits.keepalive_timeout_s, timeout_graceful_shutdown=5, **tls)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(config)
        # uvicorn installs no signal handlers outside the main thread: the gRPC side owns SIGTERM.
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="rps-infer-http",
                                       daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; returns once the server accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RpsInferError(f"the HTTP server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Finish the requests in flight, then close (uvicorn's graceful shutdown)."""
        self.server.should_exit = True
        self.thread.join(10)
        routes = getattr(self.server.config.app.state, "routes", None)
        if routes is not None:
            routes.close()
