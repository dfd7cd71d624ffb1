"""The naive reference server: the plain script the game team started from, kept as a yardstick.

``grpc.server(ThreadPoolExecutor(max_workers=10))``, a NeuralService servicer whose Predict turns
``request.features`` into a float32 ``[1, n]`` array, calls ``InferenceSession.run`` with ONNX
Runtime's defaults and builds the response (argmax for ``best_move``); BatchPredict stacks the
inputs; methods registered with the generated ``add_NeuralServiceServicer_to_server``. No
batching, no validation, no metrics. Every gRPC report shows it beside the echo (the floor) and
the service.

    python -m rps_infer.serving.naive --policy P.onnx --value V.onnx [--port 0]
"""

from __future__ import annotations

import argparse
from concurrent import futures

from rps_infer.serving.echo import run_until_signalled


def build_naive_server(host: str, port: int, policy: str, value: str):
    """(server, bound port) of the started naive server."""
    import grpc
    import numpy as np
    import onnxruntime as ort

    from rps_infer.serving.protos import neural_pb2, neural_pb2_grpc

    sessions = {"policy": ort.InferenceSession(policy), "value": ort.InferenceSession(value)}

    class Servicer(neural_pb2_grpc.NeuralServiceServicer):
        def _run(self, model_type, x):
            session = sessions[model_type]
            return session.run(None, {session.get_inputs()[0].name: x})[0]

        def _response(self, model_type, row):
            if model_type == "value":
                return neural_pb2.PredictResponse(value=float(row[0]))
            return neural_pb2.PredictResponse(probabilities=row.tolist(), best_move=int(np.argmax(row)))

        def Predict(self, request, context):  # noqa: N802 - gRPC method name
            x = np.array(request.features, dtype=np.float32).reshape(1, -1)
            return self._response(request.model_type, self._run(request.model_type, x)[0])

        def BatchPredict(self, request, context):  # noqa: N802
            x = np.array([list(i.features) for i in request.inputs], dtype=np.float32)
            out = self._run(request.model_type, x)
            return neural_pb2.BatchPredictResponse(outputs=[self._response(request.model_type, r) for r in out])

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
    neural_pb2_grpc.add_NeuralServiceServicer_to_server(Servicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM; prints the same readiness line as the service."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--value", required=True)
    args = parser.parse_args(argv)
    server, port = build_naive_server(args.host, args.port, args.policy, args.value)
    print(f"rps-infer serving on {args.host}:{port} (naive)", flush=True)
    return run_until_signalled(server)


if __name__ == "__main__":
    raise SystemExit(main())
