"""Small gRPC clients, numpy in and numpy out: one per API.

    with NeuralClient("127.0.0.1:50053") as c:
        probs, best = c.predict_policy(x)          # x: float32 [81]
        values = c.batch_predict("value", xs)      # xs: float32 [N, 81] -> [N, 1]
    with V2Client("127.0.0.1:50053") as c:
        out = c.infer("policy", {"input": xs})     # {"output": float32 [N, 9]}

A target names one server (``HOST:PORT``) or several replicas: a comma list
``HOST:PORT,HOST:PORT`` or a gRPC target with a resolver scheme (``dns:///NAME:PORT``,
``ipv4:IP:PORT,IP:PORT``, ``ipv6:[IP]:PORT,...``). Replicas are balanced round-robin.
Every channel, to one server too, retries a call that failed UNAVAILABLE or CANCELLED
(see :func:`service_config`): a replica killed or stopped, a worker of a pool restarted, a
server draining costs the caller a few milliseconds instead of an error.
"""

from __future__ import annotations

import json
import socket

import numpy as np

from rps_infer.errors import RpsInferError
from rps_infer.serving import codecs

DEFAULT_MESSAGE_MB = 64
# Resolver schemes gRPC understands that may name several servers; a bare HOST:PORT has none.
REPLICA_SCHEMES = ("dns:", "ipv4:", "ipv6:")
# Every method of both APIs (and the health Check) is a pure function of its request (inference
# reads fixed weights), so sending it again after a failure is safe.
IDEMPOTENT_SERVICES = ("neural.NeuralService", "inference.GRPCInferenceService")
# UNAVAILABLE: no server reached, or it went away before answering (SIGKILL: "Stream removed
# (Connection reset by peer)"; shutdown: "GOAWAY received"). CANCELLED: a server that stops
# (SIGTERM, grace or not) cancels the calls it had received but not yet handed to a handler
# (grpc/grpc#41785; 1 to 4 calls per SIGTERM at 4 clients here). The server never answers
# CANCELLED on purpose, and gRPC never retries a call its own caller cancelled.
RETRY_POLICY = {"maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "1s", "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}
# Per channel: tokens -1 per failed attempt, +0.1 per success, retries only while above half
# of maxTokens. So retries stop while more than about one call in ten fails (a broken or
# overloaded fleet is not hammered), yet a burst of 50 failures is retried: every call in
# flight at a killed replica fails at once, and with 10 tokens a channel shared by 32 threads
# lost 23 and 37 calls to one SIGKILL and one SIGTERM (100 tokens: none).
RETRY_THROTTLING = {"maxTokens": 100, "tokenRatio": 0.1}


def replicated(target: str) -> bool:
    """Whether ``target`` may name several servers (a comma list or a resolver scheme)."""
    return "," in target or target.startswith(REPLICA_SCHEMES)


def grpc_target(target: str) -> str:
    """The gRPC target string of ``target``: a comma list ``HOST:PORT,HOST:PORT`` becomes
    ``ipv4:IP:PORT,IP:PORT`` (gRPC's only scheme taking a list; names are resolved here, once,
    to their first IPv4 address: use ``dns:///NAME:PORT`` to follow a name's records);
    anything else is passed on as it is."""
    if "," not in target or target.startswith((*REPLICA_SCHEMES, "unix:")):
        return target
    return "ipv4:" + ",".join(_ipv4_address(item.strip()) for item in target.split(","))


def _ipv4_address(item: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RpsInferError(f"expected HOST:PORT in the comma list, got {item!r}")
    try:
        address = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError) as exc:
        raise RpsInferError(f"cannot resolve {host!r} to an IPv4 address ({exc}); for IPv6 replicas give "
                            "ipv6:[IP]:PORT,[IP]:PORT, for a name with several records dns:///NAME:PORT") from None
    return f"{address}:{port}"


def service_config(balance: bool, retries: bool = True) -> str:
    """The channel's service config (JSON): round_robin over the resolved addresses when
    ``balance`` (default pick_first sends everything to one), and with ``retries`` up to 5
    attempts of a call that failed UNAVAILABLE or CANCELLED (see ``RETRY_POLICY``), 0.05 s
    backoff doubling to 1 s, throttled."""
    config: dict = {}
    if balance:
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    if retries:
        names = [{"service": s} for s in IDEMPOTENT_SERVICES] + [{"service": "grpc.health.v1.Health",
                                                                   "method": "Check"}]
        config["methodConfig"] = [{"name": names, "retryPolicy": RETRY_POLICY}]
        config["retryThrottling"] = RETRY_THROTTLING
    return json.dumps(config)


def channel_options(target: str, max_message_mb: int = DEFAULT_MESSAGE_MB, retries: bool = True) -> list[tuple]:
    """Channel arguments: message limits, a connection of its own, the service config.
    ``retries=False`` also turns gRPC's transparent retries off (nothing is sent twice)."""
    limit = max_message_mb * 1024 * 1024
    # Each client its own connection: grpcio otherwise shares one TCP connection among all
    # channels to the same target, so a pool of workers would see one client, not many.
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.service_config", service_config(replicated(target), retries)),
            ("grpc.enable_retries", int(retries))]


def open_channel(target: str, max_message_mb: int = DEFAULT_MESSAGE_MB, retries: bool = True):
    """A plaintext channel to ``target`` (one server or replicas) with :func:`channel_options`."""
    import grpc

    return grpc.insecure_channel(grpc_target(target), options=channel_options(target, max_message_mb, retries))


def check_target(target: str, timeout_s: float = 5.0) -> None:
    """Refuse, before any load is sent, a target where no server answers gRPC health checks as
    SERVING (a load generator against nothing would report thousands of req/s of UNAVAILABLE)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with open_channel(target, retries=False) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s,
                                                              wait_for_ready=True)
        except grpc.RpcError as exc:
            raise RpsInferError(f"--target {target}: no server answers a gRPC health check there within "
                                f"{timeout_s:g} s ({exc.code().name}: {exc.details()})") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RpsInferError(f"--target {target}: the server is not ready "
                            f"({health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)})")


def check_pids(pids: list[int]) -> None:
    """Refuse a ``--server-pid`` that names no running process (its memory would read as 0)."""
    import os

    def running(pid: int) -> bool:
        try:
            os.kill(pid, 0)  # signal 0: existence and permission only
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    missing = [pid for pid in pids if pid <= 0 or not running(pid)]
    if missing:
        raise RpsInferError(f"--server-pid {', '.join(map(str, missing))}: no such process")


class _Client:
    """``target``: one server or several replicas (see the module). ``wait_for_ready``: a call
    made while the connection is down waits for it (up to the timeout) instead of failing at
    once with UNAVAILABLE; use it against a worker pool, where a restarted worker's clients
    reconnect to another worker within milliseconds."""

    def __init__(self, target: str, timeout: float | None = 30.0, max_message_mb: int = DEFAULT_MESSAGE_MB,
                 wait_for_ready: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self.channel = open_channel(target, max_message_mb)

    @property
    def call_options(self) -> dict:
        """Keyword arguments of every call: deadline and wait-for-ready."""
        return {"timeout": self.timeout, "wait_for_ready": self.wait_for_ready}

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the channel is connected (raises grpc.FutureTimeoutError)."""
        import grpc

        grpc.channel_ready_future(self.channel).result(timeout=timeout)


class NeuralClient(_Client):
    """The NeuralService API (what the game clients speak)."""

    def __init__(self, target: str, **kwargs) -> None:
        super().__init__(target, **kwargs)
        from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc

        self.pb = neural_pb2
        self.stub = neural_pb2_grpc.NeuralServiceStub(self.channel)

    def predict(self, model_type: str, features: np.ndarray):
        """The raw PredictResponse for one position."""
        request = self.pb.PredictRequest(features=np.asarray(features, np.float32).ravel().tolist(),
                                         model_type=model_type)
        return self.stub.Predict(request, **self.call_options)

    def predict_policy(self, features: np.ndarray) -> tuple[np.ndarray, int]:
        """(probabilities [9], best move) for one position."""
        response = self.predict("policy", features)
        return np.array(response.probabilities, dtype=np.float32), response.best_move

    def predict_value(self, features: np.ndarray) -> float:
        """The value of one position."""
        return self.predict("value", features).value

    def batch_predict(self, model_type: str, features: np.ndarray) -> np.ndarray:
        """Probabilities [N, 9] (policy) or values [N, 1] (value) for positions [N, 81]."""
        rows = np.asarray(features, np.float32).tolist()
        request = self.pb.BatchPredictRequest(inputs=[self.pb.InputFeatures(features=r) for r in rows],
                                              model_type=model_type)
        outputs = self.stub.BatchPredict(request, **self.call_options).outputs
        if model_type == "value":
            return np.array([[o.value] for o in outputs], dtype=np.float32)
        return np.array([o.probabilities for o in outputs], dtype=np.float32)

    def model_info(self, model_type: str):
        """The ModelInfoResponse."""
        return self.stub.GetModelInfo(self.pb.ModelInfoRequest(model_type=model_type), **self.call_options)


class V2Client(_Client):
    """The Open Inference Protocol (KServe v2) API."""

    def __init__(self, target: str, **kwargs) -> None:
        super().__init__(target, **kwargs)
        from rps_infer.serving.protos import predict_v2_pb2, predict_v2_pb2_grpc

        self.pb = predict_v2_pb2
        self.stub = predict_v2_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def live(self) -> bool:
        """ServerLive."""
        return self.stub.ServerLive(self.pb.ServerLiveRequest(), **self.call_options).live

    def ready(self, model: str | None = None) -> bool:
        """ServerReady, or ModelReady of ``model``."""
        if model is None:
            return self.stub.ServerReady(self.pb.ServerReadyRequest(), **self.call_options).ready
        return self.stub.ModelReady(self.pb.ModelReadyRequest(name=model), **self.call_options).ready

    def metadata(self, model: str):
        """ModelMetadataResponse."""
        return self.stub.ModelMetadata(self.pb.ModelMetadataRequest(name=model), **self.call_options)

    def request(self, model: str, inputs: dict[str, np.ndarray], raw: bool = True,
                outputs: list[str] | None = None):
        """The ModelInferRequest this client sends."""
        return infer_request(model, inputs, raw, outputs)

    def infer(self, model: str, inputs: dict[str, np.ndarray], raw: bool = True,
              outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """ModelInfer; returns output name -> array (raw or typed contents, whichever came)."""
        response = self.stub.ModelInfer(self.request(model, inputs, raw, outputs), **self.call_options)
        return decode_response(response)


def infer_request(model: str, inputs: dict[str, np.ndarray], raw: bool = True, outputs: list[str] | None = None):
    """A ModelInferRequest: tensors as raw little-endian bytes (``raw``) or typed contents."""
    from rps_infer.serving.protos import predict_v2_pb2

    request = predict_v2_pb2.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        array = np.asarray(array)
        tensor = request.inputs.add(name=name, datatype=codecs.datatype_of(array.dtype), shape=array.shape)
        if raw:
            request.raw_input_contents.append(codecs.to_raw(array))
        else:
            codecs.encode_contents(array, tensor.contents)
    for name in outputs or []:
        request.outputs.add(name=name)
    return request


def decode_response(response) -> dict[str, np.ndarray]:
    """Output name -> array of a ModelInferResponse."""
    result = {}
    for i, tensor in enumerate(response.outputs):
        shape = tuple(tensor.shape)
        if response.raw_output_contents:
            raw = response.raw_output_contents[i]
            result[tensor.name] = codecs.decode_raw(tensor.name, tensor.datatype, shape, raw)
        else:
            result[tensor.name] = codecs.decode_contents(tensor.name, tensor.datatype, shape, tensor.contents)
    return result
