"""A bare grpcio echo server: the transport floor the service is measured against.

It speaks the same two APIs with the same payloads and server options as
``rps-infer serve`` and does no inference: Predict answers 9 fixed probabilities
(policy) or a value; BatchPredict one response per input; ModelInfer answers a model
given with ``--model NAME=FILE.onnx`` with zero tensors of that graph's outputs (names,
datatypes and shapes, the batch dim taken from the request), as raw bytes. Everything
the service does beyond this (decoding to numpy, validation, inference, encoding) is
its overhead.

    python -m rps_infer.serving.echo [--port 0] [--threads 16] [--model NAME=FILE.onnx ...]
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures

OUTPUT_COLUMNS = {"policy": 9, "value": 1}
FIXED_PROBABILITIES = [1.0 / 9] * 9


def build_echo_server(host: str, port: int, threads: int = 16, max_message_mb: int = 64,
                      models: dict[str, str] | None = None):
    """(server, bound port) of a started echo server answering ModelInfer for ``models``
    (name -> ONNX file)."""
    import grpc
    import numpy as np

    from rps_infer.formats.onnxfile import io_specs
    from rps_infer.serving import codecs
    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc, predict_v2_pb2, predict_v2_pb2_grpc

    outputs = {name: io_specs(path)[1] for name, path in (models or {}).items()}

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
            if request.model_name not in outputs:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_name!r}")
            batch = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1
            response = predict_v2_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
            for spec in outputs[request.model_name]:
                shape = [batch, *(1 if d is None else d for d in spec.shape[1:])]
                response.outputs.add(name=spec.name, datatype=codecs.datatype_of(spec.dtype), shape=shape)
                response.raw_output_contents.append(np.zeros(shape, spec.dtype).tobytes())
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
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE.onnx",
                        help="answer ModelInfer for this model with zeros shaped like its outputs (repeatable)")
    args = parser.parse_args(argv)
    models = dict(item.split("=", 1) for item in args.model)
    server, port = build_echo_server(args.host, args.port, args.threads, models=models)
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
