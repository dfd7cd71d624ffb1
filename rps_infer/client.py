"""Small gRPC clients, numpy in and numpy out: one per API.

    with NeuralClient("127.0.0.1:50053") as c:
        probs, best = c.predict_policy(x)          # x: float32 [81]
        values = c.batch_predict("value", xs)      # xs: float32 [N, 81] -> [N, 1]
    with V2Client("127.0.0.1:50053") as c:
        out = c.infer("policy", {"input": xs})     # {"output": float32 [N, 9]}
"""

from __future__ import annotations

import numpy as np

from rps_infer.serving import codecs

DEFAULT_MESSAGE_MB = 64


def _channel(target: str, max_message_mb: int):
    import grpc

    limit = max_message_mb * 1024 * 1024
    # Each client its own connection: grpcio otherwise shares one TCP connection among all
    # channels to the same target, so a pool of workers would see one client, not many.
    return grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", limit),
                                                  ("grpc.max_send_message_length", limit),
                                                  ("grpc.use_local_subchannel_pool", 1)])


class _Client:
    """``wait_for_ready``: a call made while the connection is down waits for it (up to the
    timeout) instead of failing at once with UNAVAILABLE; use it against a worker pool,
    where a restarted worker's clients reconnect to another worker within milliseconds."""

    def __init__(self, target: str, timeout: float | None = 30.0, max_message_mb: int = DEFAULT_MESSAGE_MB,
                 wait_for_ready: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self.channel = _channel(target, max_message_mb)

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
