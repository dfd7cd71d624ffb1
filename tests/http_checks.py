"""Checks of an HTTP v2 server's production bounds, each a function of a ``HOST:PORT`` that
raises AssertionError naming what is wrong. tests/test_http_production.py runs each against
the real server and against a server with the defect it exists for planted."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import time

POLICY_BODY = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 81],
                                      "data": [0.5] * 81}]}).encode()
INFER = "/v2/models/policy/infer"


def connect(target: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to ``target``."""
    host, port = target.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of the next response on ``sock``."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def keepalive_p50_ms(target: str, requests: int = 21) -> float:
    """Median milliseconds of an infer on one reused connection (the first request excluded)."""
    host, port = target.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        connection.request("POST", INFER, POLICY_BODY, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        times.append((time.perf_counter() - start) * 1e3)
    connection.close()
    return statistics.median(times[1:])


def check_no_nagle_stall(target: str) -> None:
    """Requests on a reused connection take no delayed-ACK stall (40 ms each on Linux)."""
    p50 = keepalive_p50_ms(target)
    assert p50 < 20, f"keep-alive infer p50 {p50:.1f} ms: a Nagle / delayed-ACK stall (no TCP_NODELAY?)"


def check_body_limit(target: str, limit_bytes: int) -> None:
    """A Content-Length above the limit is refused with 413 before the body is sent."""
    with connect(target, timeout=2) as sock:
        sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {limit_bytes + 1}\r\n\r\n".encode())
        try:
            status, _, body = read_response(sock)
        except (TimeoutError, OSError) as exc:
            raise AssertionError(f"no answer to a {limit_bytes + 1}-byte Content-Length ({exc}): "
                                 "no body limit") from None
    assert status == 413, f"a body above the limit got {status}, not 413: {body[:200]!r}"


def check_depth_limit(target: str, depth: int = 100_000) -> None:
    """JSON nested ``depth`` deep is a 400, never a 500."""
    body = b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"
    with connect(target) as sock:
        sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        status, _, reply = read_response(sock)
    assert status == 400, f"JSON nested {depth} deep got {status}: {reply[:200]!r}"


def check_header_timeout(target: str, timeout_s: float) -> None:
    """A client that stops half-way through its headers gets 408 and is disconnected."""
    with connect(target, timeout=timeout_s + 2) as sock:
        sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: t\r\n".encode())  # and nothing more
        start = time.monotonic()
        try:
            status, _, body = read_response(sock)
        except TimeoutError:
            raise AssertionError(f"a half-sent header was still open after {time.monotonic() - start:.1f} s: "
                                 "no header timeout") from None
        assert status == 408, f"a half-sent header got {status}, not 408: {body[:200]!r}"
        assert sock.recv(1) == b"", "the connection stayed open after the 408"
