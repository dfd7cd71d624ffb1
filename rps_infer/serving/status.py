"""THE place where errors become gRPC status codes and HTTP statuses, and every RPC is counted.

Servicer methods are wrapped with :func:`rpc`; they and the REST routes raise rps_infer's
named exceptions and never touch status codes themselves.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import grpc

from rps_infer.errors import (
    AuthenticationError,
    InputMismatchError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    ModelNotReadyError,
    ProviderUnavailableError,
    RequestTimeoutError,
    RequestTooLargeError,
    RouteNotFoundError,
)

log = logging.getLogger("rps_infer.serving")

# First match wins; anything else is a genuine server fault: INTERNAL.
STATUS_BY_ERROR: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (InputMismatchError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ModelNotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ProviderUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (RequestTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RequestTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (RouteNotFoundError, grpc.StatusCode.NOT_FOUND),
    (MethodNotAllowedError, grpc.StatusCode.UNIMPLEMENTED),
)


# The v2 REST API's status for each code (the KServe v2 HTTP/REST spec: 400 bad request,
# 404 unknown model or path, 503 not ready; 401 for a missing token; 413 a body above
# --max-message-mb, 408 a client too slow to send it, 405 a method the path does not take;
# 500 a server fault).
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.UNAUTHENTICATED: 401,
               grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.DEADLINE_EXCEEDED: 408,
               grpc.StatusCode.UNIMPLEMENTED: 405, grpc.StatusCode.INTERNAL: 500}


def http_status_for(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message a REST client sees for ``exc`` (the gRPC message, verbatim)."""
    code, message = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.error("HTTP request failed", exc_info=exc)
    return HTTP_STATUS[code], message


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``exc``."""
    for kind, code in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


_labels = threading.local()
# Which server process answered (the load generator's per-replica split behind a round_robin
# channel): sent as trailing metadata to a gRPC call that asks with ``rps-replica`` request
# metadata (any value). Only on request: naming every answer cost ~17 us of server CPU per
# Predict b1 (7 %; benchmarks/README.md). Set once the port is bound.
_identity: tuple[tuple[str, str], ...] = ()
REPLICA_KEY = "rps-replica"
ASK_REPLICA = ((REPLICA_KEY, "?"),)  # the request metadata that asks a server to name itself


def identify(address: str) -> None:
    """Name this server process to the gRPC calls that ask (``rps-replica``) and in HTTP answers."""
    global _identity
    _identity = ((REPLICA_KEY, address),)


def _asks_for_identity(context) -> bool:
    return any(key == REPLICA_KEY for key, _ in context.invocation_metadata())


def identity() -> dict[str, str]:
    """``{"rps-replica": "HOST:PORT pid PID"}`` once :func:`identify` ran (HTTP answers carry it too)."""
    return dict(_identity)


def label_model(name: str) -> None:
    """Name the model of the request being handled on this thread (for the metrics)."""
    _labels.model = name or "-"


def rpc(api: str, returns: type | None = None) -> Callable:
    """Decorate a servicer method: map exceptions to a status, record metrics.

    The method receives the request's raw bytes (decoding is part of the method, so
    undecodable bytes become INVALID_ARGUMENT here rather than grpcio's INTERNAL) and
    calls :func:`label_model` once it knows the model. The servicer instance must have
    a ``metrics`` attribute (see :mod:`rps_infer.serving.metrics`). ``returns`` (a message
    type, or ``bytes`` for a method that encodes its answer itself) picks the serializer.
    """

    def wrap(method: Callable) -> Callable:
        name = method.__name__

        def fail(exc: Exception, context) -> None:
            code, message = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("%s.%s failed", api, name)
            context.abort(code, message)

        @functools.wraps(method)
        def handler(self, request, context):
            if _identity and _asks_for_identity(context):
                context.set_trailing_metadata(_identity)
            metrics = self.metrics
            if not metrics.enabled:  # the hot path without metrics: ~2 us less per call
                try:
                    return method(self, request, context)
                except Exception as exc:
                    fail(exc, context)
            _labels.model = "-"
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            metrics.in_flight(api, 1)
            try:
                return method(self, request, context)
            except Exception as exc:
                code = status_for(exc)[0]
                fail(exc, context)
            finally:
                metrics.in_flight(api, -1)
                metrics.request(api, name, _labels.model, code.name, time.perf_counter() - start)

        handler.returns = returns
        return handler

    return wrap
