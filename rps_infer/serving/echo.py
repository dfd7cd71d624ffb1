"""Bare grpcio echo servers: the transport floor the service is measured against.

They speak the same two APIs with the same payloads and server options as ``rps-infer
serve`` and do no inference: Predict answers 9 fixed probabilities (policy) or a value;
BatchPredict one response per input; ModelInfer answers a model given with ``--model
NAME=FILE.onnx`` with zero tensors of that graph's outputs (names, datatypes and shapes, the
batch dim taken from the request), as raw bytes. Everything the service does beyond this
(decoding to numpy, validation, inference, encoding) is its overhead.

Two of them, because the floor is the *fastest* bare Python server on the machine: the sync
``grpc.server`` (a thread pool) and ``grpc.aio`` (handlers in the event loop). Reports show the
service against the faster one, so a slow echo can never make the service look close to it.

    python -m rps_infer.serving.echo [--aio] [--port 0] [--threads 16] [--model NAME=FILE.onnx ...] [--infer]
                                     [--spin-us US] [--grpc-poller {event-engine,iomgr}]

And each with either of gRPC core's I/O paths (:mod:`rps_infer.serving.poller`): grpcio's
default, which a plain script gets, and the ``iomgr`` path ``rps-infer serve`` takes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import rps_infer.defaults as defaults
from rps_infer.serving import poller

OUTPUT_COLUMNS = {"policy": 9, "value": 1}
FIXED_PROBABILITIES = [1.0 / 9] * 9
KINDS = ("sync", "aio")


class Answers:
    """What an echo answers, as plain functions of the request (no server in them).

    With ``infer``, Predict also runs the model named by ``model_type`` once in ONNX Runtime
    (one thread, no spinning: the service's settings) on a fixed input and answers as before:
    the floor of any server that runs ONNX Runtime per request, without decoding or encoding.
    With ``spin_us``, Predict also spins that long in Python, holding the GIL and making no
    system call: what a given amount of handler work costs a server (compare ``infer``).
    """

    def __init__(self, models: dict[str, str] | None = None, infer: bool = False, spin_us: float = 0) -> None:
        from rps_infer.formats.onnxfile import io_specs

        specs = {name: io_specs(path) for name, path in (models or {}).items()}
        self.outputs = {name: outputs for name, (_, outputs) in specs.items()}
        self.sessions = {name: _session(models[name], inputs) for name, (inputs, _) in specs.items()} if infer else {}
        self.spin_s = spin_us * 1e-6

    @staticmethod
    def one(model_type: str):
        from rps_infer.serving.protos import neural_pb2

        if model_type == "value":
            return neural_pb2.PredictResponse(value=0.5)
        return neural_pb2.PredictResponse(probabilities=FIXED_PROBABILITIES, best_move=0)

    def predict(self, request):
        if found := self.sessions.get(request.model_type):
            session, feeds = found
            session.run(None, feeds)
        if self.spin_s:
            end = time.perf_counter() + self.spin_s
            while time.perf_counter() < end:
                pass
        return self.one(request.model_type)

    def batch_predict(self, request):
        from rps_infer.serving.protos import neural_pb2

        return neural_pb2.BatchPredictResponse(outputs=[self.one(request.model_type) for _ in request.inputs])

    def model_info(self, request):
        from rps_infer.serving.protos import neural_pb2

        return neural_pb2.ModelInfoResponse(input_size=81, hidden_size=-1,
                                            output_size=OUTPUT_COLUMNS.get(request.model_type, 9))

    def model_infer(self, request):
        """The response, or None for a model the echo does not know."""
        import numpy as np

        from rps_infer.serving import codecs
        from rps_infer.serving.protos import predict_v2_pb2

        if request.model_name not in self.outputs:
            return None
        batch = request.inputs[0].shape[0] if request.inputs and request.inputs[0].shape else 1
        response = predict_v2_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
        for spec in self.outputs[request.model_name]:
            shape = [batch, *(1 if d is None else d for d in spec.shape[1:])]
            response.outputs.add(name=spec.name, datatype=codecs.datatype_of(spec.dtype), shape=shape)
            response.raw_output_contents.append(np.zeros(shape, spec.dtype).tobytes())
        return response


def _session(path: str, inputs):
    """(ONNX Runtime session with the service's options, fixed batch-1 feeds for ``inputs``)."""
    import numpy as np
    import onnxruntime as ort

    from rps_infer.backends import registry
    from rps_infer.backends.onnxrt import OnnxRuntimeBackend

    served = OnnxRuntimeBackend(path, **registry.get("onnxrt").thread_options(1))  # never activated
    session = ort.InferenceSession(path, served.session_options(), providers=["CPUExecutionProvider"])
    feeds = {s.name: np.zeros([1, *(1 if d is None else d for d in s.shape[1:])], s.dtype) for s in inputs}
    return session, feeds


def _servicers(answers: Answers, aio: bool):
    """NeuralService and GRPCInferenceService servicers over ``answers`` (async for ``aio``)."""
    import grpc

    from rps_infer.serving.protos import neural_pb2_grpc, predict_v2_pb2, predict_v2_pb2_grpc

    def infer(request, context):
        response = answers.model_infer(request)
        if response is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details(f"no model {request.model_name!r}")
            return predict_v2_pb2.ModelInferResponse()
        return response

    def live(request, context):
        return predict_v2_pb2.ServerLiveResponse(live=True)

    handlers = {"Predict": lambda r, c: answers.predict(r), "BatchPredict": lambda r, c: answers.batch_predict(r),
                "GetModelInfo": lambda r, c: answers.model_info(r), "ModelInfer": infer, "ServerLive": live}
    if aio:
        handlers = {name: _awaitable(fn) for name, fn in handlers.items()}
    neural = type("Neural", (neural_pb2_grpc.NeuralServiceServicer,),
                  {n: staticmethod(handlers[n]) for n in ("Predict", "BatchPredict", "GetModelInfo")})
    inference = type("Inference", (predict_v2_pb2_grpc.GRPCInferenceServiceServicer,),
                     {n: staticmethod(handlers[n]) for n in ("ModelInfer", "ServerLive")})
    return neural(), inference()


def _awaitable(fn):
    async def handler(request, context):
        return fn(request, context)

    return handler


def _options(max_message_mb: int) -> list:
    limit = max_message_mb * 1024 * 1024
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0)]


def build_echo_server(host: str, port: int, threads: int = defaults.HANDLER_THREADS, max_message_mb: int = 64,
                      models: dict[str, str] | None = None, infer: bool = False, spin_us: float = 0):
    """(server, bound port) of a started sync echo server answering ModelInfer for ``models``
    (and running them for Predict with ``infer``, spinning ``spin_us``; see :class:`Answers`)."""
    from concurrent import futures

    import grpc

    from rps_infer.serving.protos import neural_pb2_grpc, predict_v2_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=_options(max_message_mb))
    neural, inference = _servicers(Answers(models, infer, spin_us), aio=False)
    neural_pb2_grpc.add_NeuralServiceServicer_to_server(neural, server)
    predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(inference, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


async def serve_aio(host: str, port: int, models: dict[str, str], ready, stop, max_message_mb: int = 64) -> None:
    """Run the aio echo until ``stop`` (an asyncio.Event) is set; ``ready(port)`` once it listens."""
    import grpc

    from rps_infer.serving.protos import neural_pb2_grpc, predict_v2_pb2_grpc

    server = grpc.aio.server(options=_options(max_message_mb))
    neural, inference = _servicers(Answers(models), aio=True)
    neural_pb2_grpc.add_NeuralServiceServicer_to_server(neural, server)
    predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(inference, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    ready(bound)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    """Run an echo server until SIGTERM; prints the same readiness line as the service."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--aio", action="store_true", help="grpc.aio instead of the sync thread-pool server")
    parser.add_argument("--threads", type=int, default=defaults.HANDLER_THREADS,
                        help=f"sync server: handler threads (default {defaults.HANDLER_THREADS}, its fastest here)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE.onnx",
                        help="answer ModelInfer for this model with zeros shaped like its outputs (repeatable)")
    parser.add_argument("--infer", action="store_true",
                        help="sync server: Predict also runs the --model named by model_type in ONNX Runtime once "
                             "on a fixed input (the floor of a server that runs ONNX Runtime per request)")
    parser.add_argument("--spin-us", type=float, default=0, metavar="US",
                        help="sync server: Predict also spins US microseconds in Python, holding the GIL (what "
                             "that much handler work costs a server; compare --infer)")
    parser.add_argument("--grpc-poller", choices=poller.POLLERS, default="event-engine",
                        help="gRPC core's I/O path (default event-engine: grpcio's own; rps-infer serve takes iomgr)")
    args = parser.parse_args(argv)
    if (args.infer or args.spin_us) and args.aio:
        parser.error("--infer and --spin-us run in the sync server only (the aio echo answers without work)")
    if args.spin_us < 0:
        parser.error(f"--spin-us must be >= 0, got {args.spin_us}")
    models = dict(item.split("=", 1) for item in args.model)
    kind = "aio" if args.aio else "sync"
    print(poller.choose(args.grpc_poller), file=sys.stderr, flush=True)  # before grpc is imported

    def ready(port: int) -> None:
        print(f"rps-infer serving on {args.host}:{port} (echo, {kind})", flush=True)

    if args.aio:
        import asyncio

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await serve_aio(args.host, args.port, models, ready, stop)

        asyncio.run(run())
        return 0
    server, port = build_echo_server(args.host, args.port, args.threads, models=models, infer=args.infer,
                                     spin_us=args.spin_us)
    ready(port)
    return run_until_signalled(server)


def run_until_signalled(server) -> int:
    """Block until SIGTERM or SIGINT, then stop the sync ``server`` (1 s grace); exit code 0."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
