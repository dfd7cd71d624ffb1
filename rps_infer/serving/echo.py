"""A bare grpcio echo server: the transport floor the service is measured against.

It speaks the same two APIs with the same payloads and server options as
``rps-infer serve`` and does no inference: Predict answers 9 fixed probabilities
(policy) or a value; BatchPredict one response per input; ModelInfer a raw FP32
tensor of the model's output size (9 or 1 columns per row; for an image input
[N, C, H, W], an [N, 3, H, W] image as the U-Net answers; for a ``digits-*`` model an
INT64 label [N] and FP32 probabilities [N, 10], as the classifiers answer). Everything the service
does beyond this (decoding to numpy, validation, inference, encoding) is its overhead.

    python -m rps_infer.serving.echo [--port 0] [--threads 16]
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures

OUTPUT_COLUMNS = {"policy": 9, "value": 1}
FIXED_PROBABILITIES = [1.0 / 9] * 9


def build_echo_server(host: str, port: int, threads: int = 16, max_message_mb: int = 64):
    """(server, bound port) of a started echo server."""
    import grpc
    import numpy as np

    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc, predict_v2_pb2, predict_v2_pb2_grpc

    def one(model_type: str):
        if model_type == "value":
            return neural_pb2.PredictResponse(value=0.5)
        return neural_pb2.PredictResponse(probabilities=FIXED_PROBABILITIES, best_move=0)

    class Neural(neural_pb2_grpc.NeuralServiceServicer):
        def Predict(self, request, context):  # noqa: N802
            return one(request.model_type)

        def BatchPredict(self, request, context):  # noqa: N802
            return neural_pb2.BatchPredictResponse(outputs=[one(request.model_type) for _ in request.inputs])

        def GetModelInfo(self, request, context):  # noqa: N802
            return neural_pb2.ModelInfoResponse(input_size=81, hidden_size=-1,
                                                output_size=OUTPUT_COLUMNS.get(request.model_type, 9))

    class Inference(predict_v2_pb2_grpc.GRPCInferenceServiceServicer):
        def ServerLive(self, request, context):  # noqa: N802
            return predict_v2_pb2.ServerLiveResponse(live=True)

        def ModelInfer(self, request, context):  # noqa: N802
            first = list(request.inputs[0].shape) if request.inputs else [1]
            if len(first) == 4:  # an image model: an image of 3 channels back
                shape = [first[0], 3, first[2], first[3]]
            else:
                shape = [first[0], OUTPUT_COLUMNS.get(request.model_name, 9)]
            response = predict_v2_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
            if request.model_name.startswith("digits"):
                response.outputs.add(name="label", datatype="INT64", shape=first[:1])
                response.raw_output_contents.append(np.zeros(first[:1], np.int64).tobytes())
                shape = [first[0], 10]
                response.outputs.add(name="probabilities", datatype="FP32", shape=shape)
            else:
                response.outputs.add(name="output", datatype="FP32", shape=shape)
            response.raw_output_contents.append(np.zeros(shape, np.float32).tobytes())
            return response

    limit = max_message_mb * 1024 * 1024
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads),
                         options=[("grpc.max_receive_message_length", limit),
                                  ("grpc.max_send_message_length", limit), ("grpc.so_reuseport", 0)])
    neural_pb2_grpc.add_NeuralServiceServicer_to_server(Neural(), server)
    predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Inference(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    """Run the echo server until SIGTERM; prints the same readiness line as the service."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    server, port = build_echo_server(args.host, args.port, args.threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print(f"rps-infer serving on {args.host}:{port} (echo)", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
