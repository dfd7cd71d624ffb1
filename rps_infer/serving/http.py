"""The v2 REST API on uvicorn + Starlette, in the gRPC server's process, over the same models.

Routes are thin: each hands the request's parts to :mod:`rps_infer.serving.rest` and sends
back its :class:`~rps_infer.serving.rest.Reply`. Inference runs inline in the event loop: the
served models take microseconds to a few milliseconds, less than a thread hand-off would add
for the MLPs; ``--workers N`` is the way to use more cores (every worker shares the HTTP port,
SO_REUSEPORT, as it shares the gRPC one). uvicorn was chosen over aiohttp by measurement
(``scripts/http_stacks.py``, benchmarks/README.md).

The server runs in a thread with its own event loop (:class:`HttpServer`), so the gRPC server
and its signal handling stay as they are.
"""

from __future__ import annotations

import hmac
import socket
import threading
import time

from rps_infer.errors import AuthenticationError, RpsInferError
from rps_infer.serving import rest
from rps_infer.serving.metrics import NullMetrics
from rps_infer.serving.security import SecurityConfig
from rps_infer.serving.status import identity

OPEN_PATHS = ("/v2/health/",)  # probes need no token, as gRPC's health service


def build_app(registry, token: str | None = None, metrics: NullMetrics | None = None):
    """The Starlette application serving the v2 REST API over ``registry``."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    metrics = metrics or NullMetrics()
    expected = f"Bearer {token}".encode() if token else None
    refusal = AuthenticationError("this server needs the header 'Authorization: Bearer <token>' "
                                  "(see --auth-token-file)")

    def route(path: str, method: str, answer, name: str) -> Route:
        async def endpoint(request) -> Response:
            start = time.perf_counter()
            params = request.path_params
            try:
                if expected is not None and not request.url.path.startswith(OPEN_PATHS):
                    given = request.headers.get("authorization", "").encode()
                    if not hmac.compare_digest(given, expected):
                        raise refusal
                body = await request.body() if method == "POST" else b""
                reply = answer(params.get("name"), params.get("version"), body,
                               request.headers.get(rest.HEADER_LENGTH))
            except Exception as exc:  # every error a status, through the one error map
                reply = rest.error(exc)
            if metrics.enabled:
                metrics.request("http", name, params.get("name") or "-", str(reply.status),
                                time.perf_counter() - start)
            return Response(reply.body, reply.status, headers={**reply.headers, **identity()})

        return Route(path, endpoint, methods=[method])

    models = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    answers = {
        "live": lambda *_: rest.live(),
        "ready": lambda *_: rest.ready(registry),
        "server": lambda *_: rest.server_metadata(),
        "model_ready": lambda name, version, *_: rest.model_ready(registry, name, version),
        "model": lambda name, version, *_: rest.model_metadata(registry, name, version),
        "infer": lambda name, version, body, length: rest.infer(registry, name, version, body, length),
    }
    routes = [route("/v2/health/live", "GET", answers["live"], "live"),
              route("/v2/health/ready", "GET", answers["ready"], "ready"),
              route("/v2", "GET", answers["server"], "metadata")]
    for prefix in (models, versioned):
        routes += [route(f"{prefix}/ready", "GET", answers["model_ready"], "model_ready"),
                   route(prefix, "GET", answers["model"], "model_metadata"),
                   route(f"{prefix}/infer", "POST", answers["infer"], "infer")]
    return Starlette(routes=routes)


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening TCP socket (``port`` 0: a free one); shared by the workers with ``reuse_port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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
    """uvicorn serving ``app`` on ``sock`` from a daemon thread; TLS from the gRPC flags."""

    def __init__(self, app, sock: socket.socket, security: SecurityConfig | None = None) -> None:
        import ssl

        import uvicorn

        tls = {}
        if security is not None and security.tls_cert is not None:
            tls = {"ssl_certfile": str(security.tls_cert), "ssl_keyfile": str(security.tls_key)}
            if security.tls_client_ca is not None:
                tls |= {"ssl_ca_certs": str(security.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                                timeout_graceful_shutdown=5, **tls)
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
