"""TLS, mutual TLS, the bearer token and the plaintext rule, against real servers with
certificates this test generates."""

import subprocess
import sys

import grpc
import pytest

from rps_infer.errors import RpsInferError
from rps_infer.serving.protos import predict_v2_pb2, predict_v2_pb2_grpc
from rps_infer.serving.security import SecurityConfig, check, is_loopback

from .certs import issue, make_ca
from .server_process import ServerProcess

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    ca, ca_name, ca_key = make_ca(d, "test-ca")
    _, stranger_name, stranger_key = make_ca(d, "stranger-ca")
    return {"ca": ca, "server": issue(d, "server", ca_name, ca_key, server=True),
            "client": issue(d, "client", ca_name, ca_key, server=False),
            "stranger": issue(d, "stranger-client", stranger_name, stranger_key, server=False),
            "token": _token_file(d)}


def _token_file(d):
    path = d / "token"
    path.write_text(TOKEN + "\n")
    return path


def _models(built_zoo):
    return ("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path))


@pytest.fixture(scope="module")
def tls_server(certs, built_zoo):
    with ServerProcess(*_models(built_zoo), "--tls-cert", str(certs["server"].cert), "--tls-key",
                       str(certs["server"].key), "--auth-token-file", str(certs["token"])) as proc:
        yield proc


@pytest.fixture(scope="module")
def mtls_server(certs, built_zoo):
    with ServerProcess(*_models(built_zoo), "--tls-cert", str(certs["server"].cert), "--tls-key",
                       str(certs["server"].key), "--tls-client-ca", str(certs["ca"].cert)) as proc:
        yield proc


def _channel(target, certs, client=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs["ca"].cert.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None)
    return grpc.secure_channel(target, credentials)


def _live(channel, metadata=()):
    stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
    return stub.ServerLive(predict_v2_pb2.ServerLiveRequest(), timeout=10, metadata=metadata).live


def _code(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_tls_with_the_token_serves_and_without_it_refuses(tls_server, certs):
    with _channel(tls_server.target, certs) as channel:
        assert _live(channel, metadata=(("authorization", f"Bearer {TOKEN}"),))
        code, message = _code(lambda: _live(channel))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "authorization: Bearer" in message
        code, _ = _code(lambda: _live(channel, metadata=(("authorization", "Bearer wrong"),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        neural = channel.unary_unary("/neural.NeuralService/Predict")
        code, _ = _code(lambda: neural(b"", timeout=10))
        assert code == grpc.StatusCode.UNAUTHENTICATED  # both APIs, before any decoding


def test_health_checks_stay_open_with_a_token(tls_server, certs):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with _channel(tls_server.target, certs) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    with grpc.insecure_channel(tls_server.target) as channel:
        code, _ = _code(lambda: _live(channel, metadata=(("authorization", f"Bearer {TOKEN}"),)))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(mtls_server, certs):
    with _channel(mtls_server.target, certs, certs["client"]) as channel:
        assert _live(channel)
    for client in (None, certs["stranger"]):
        with _channel(mtls_server.target, certs, client) as channel:
            code, _ = _code(lambda ch=channel: _live(ch))
            assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("0.0.0.0", False), ("10.1.2.3", False), ("example.org", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_plaintext_on_a_reachable_address_needs_insecure(certs):
    with pytest.raises(RpsInferError, match="--insecure"):
        check(SecurityConfig(), "0.0.0.0")
    check(SecurityConfig(insecure=True), "0.0.0.0")
    check(SecurityConfig(certs["server"].cert, certs["server"].key), "0.0.0.0")
    with pytest.raises(RpsInferError, match="go together"):
        check(SecurityConfig(tls_cert=certs["server"].cert), "127.0.0.1")
    with pytest.raises(RpsInferError, match="needs --tls-cert"):
        check(SecurityConfig(tls_client_ca=certs["ca"].cert), "127.0.0.1")


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "0.0.0.0"], "refusing to serve plaintext on 0.0.0.0"),
    (["--tls-cert", "/nonexistent.crt", "--tls-key", "/nonexistent.key"],
     "argument --tls-cert: no such file or folder: /nonexistent.crt"),
])
def test_serve_refuses_unsafe_or_broken_security_settings(args, message, tmp_path):
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    for extra, want in ((args, message), (["--auth-token-file", str(empty)], "is empty")):
        proc = subprocess.run([sys.executable, "-m", "rps_infer.cli", "serve", "--port", "0", *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and want in proc.stderr, proc.stderr[-2000:]
