"""Who may talk to the server: TLS and mutual TLS, an optional bearer token, and the rule
that a server reachable from other hosts is not plaintext unless asked for.

- ``--tls-cert`` / ``--tls-key``: the server speaks TLS only. ``--tls-client-ca`` adds
  mutual TLS: a client must present a certificate signed by that CA, else the TLS
  handshake fails and no RPC runs.
- ``--auth-token-file``: every call but the health checks needs the metadata
  ``authorization: Bearer <token>``; others get UNAUTHENTICATED (mapped, like every
  error, in :mod:`rps_infer.serving.status`). The token is compared in constant time.
- Binding an address other than loopback without TLS needs ``--insecure``.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from rps_infer.errors import AuthenticationError, RpsInferError

OPEN_SERVICES = ("/grpc.health.v1.Health/",)  # load balancers probe without credentials


@dataclass(frozen=True)
class SecurityConfig:
    """TLS files, the token file and the explicit opt-out of TLS."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_token_file: Path | None = None
    insecure: bool = False


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def check(config: SecurityConfig, host: str) -> None:
    """Refuse combinations that cannot be what the user meant."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise RpsInferError("--tls-cert and --tls-key go together")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise RpsInferError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    if config.tls_cert is None and not is_loopback(host) and not config.insecure:
        raise RpsInferError(f"refusing to serve plaintext on {host}, which other hosts can reach: "
                            "give --tls-cert and --tls-key, or --insecure to accept plaintext")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RpsInferError(f"cannot read the {what} {path}: {exc.strerror}") from None


def server_credentials(config: SecurityConfig):
    """``grpc.ServerCredentials`` for TLS (mutual when a client CA is given), or None."""
    import grpc

    if config.tls_cert is None:
        return None
    pair = (_read(config.tls_key, "TLS key"), _read(config.tls_cert, "TLS certificate"))
    client_ca = _read(config.tls_client_ca, "client CA") if config.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def read_token(path: Path | None) -> str | None:
    """The bearer token (stripped), or None without a file; an empty file is an error."""
    if path is None:
        return None
    token = _read(path, "token file").decode("utf-8", "replace").strip()
    if not token:
        raise RpsInferError(f"the token file {path} is empty")
    return token


def token_interceptor(token: str):
    """A server interceptor refusing calls without ``authorization: Bearer <token>``."""
    import grpc

    from rps_infer.serving.status import status_for

    expected = f"Bearer {token}".encode()
    code, message = status_for(AuthenticationError(
        "this server needs the metadata 'authorization: Bearer <token>' (see --auth-token-file)"))

    def refuse(request, context):
        context.abort(code, message)

    def refusal_like(handler):
        # The refusal must have the refused method's shape (unary or streaming) for grpcio.
        if handler is None:
            return None
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)

    class TokenInterceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            if details.method.startswith(OPEN_SERVICES):
                return continuation(details)
            given = dict(details.invocation_metadata or ()).get("authorization", "")
            given = given.encode() if isinstance(given, str) else given
            if hmac.compare_digest(given, expected):
                return continuation(details)
            return refusal_like(continuation(details))

    return TokenInterceptor()
