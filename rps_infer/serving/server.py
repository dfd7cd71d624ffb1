"""Building and running the gRPC server: models, servicers, health, reflection, metrics,
graceful SIGTERM, and worker processes sharing one port.

Readiness: once every model is loaded and health is SERVING the server prints
``rps-infer serving on HOST:PORT`` on stdout (tests and scripts wait for it).
SIGTERM: health goes NOT_SERVING, new calls are refused, in-flight calls get
``grace_s`` seconds to finish, and the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

from rps_infer.backends import registry
from rps_infer.errors import RpsInferError
from rps_infer.serving import reflection, security, status
from rps_infer.serving.batching import AdaptiveBatcher
from rps_infer.serving.config import Batching, ServerConfig
from rps_infer.serving.metrics import NullMetrics, PrometheusMetrics
from rps_infer.serving.models import ModelRegistry, ServedModel, ServingOptions

log = logging.getLogger("rps_infer.serving")
SERVICE_NAMES = ("neural.NeuralService", "inference.GRPCInferenceService")
READY_LINE = "rps-infer serving on {host}:{port}"
HTTP_READY_LINE = "rps-infer http on {host}:{port}"


def load_model(name: str, path: Path, config: ServerConfig, kind: str | None = None) -> ServedModel:
    """Open ``path`` on the configured backend and device (activated, ready to serve)."""
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend

    info = registry.get(config.backend)
    if config.precision not in info.precisions:
        raise RpsInferError(f"--precision {config.precision} is not offered by the {config.backend} backend; "
                            f"it offers {', '.join(info.precisions)}")
    model_file = open_model(path)
    options = {} if config.precision == "fp32" else {"precision": config.precision}
    # Pinned threads without spinning (see the registry's thread options).
    if config.device == "auto":
        from rps_infer.runtime import choose_device

        choice, backend = choose_device(model_file, config.backend, threads=config.intra_op_threads, **options)
        log.info("model %r: %s", name, choice.line())
    else:
        backend = open_backend(model_file, f"{config.backend}-{config.device}", threads=config.intra_op_threads,
                               **options).activate()
    hidden = -1
    if model_file.weights is not None:
        hidden = model_file.weights.hidden_size
    elif "sizes" in model_file.metadata:
        hidden = int(model_file.metadata["sizes"].split(",")[1])
    return ServedModel(name, backend, kind or model_file.kind, hidden)


def default_model_path(name: str, backend: str) -> Path:
    """The zoo's artifact of ``name`` for ``backend`` (built on first use)."""
    import rps_infer.zoo as zoo

    if not zoo.default_zoo_path().is_file():  # an installed server (the `serve` extra) has no zoo
        raise RpsInferError("no models to serve: pass --model-repository DIR (a folder of .onnx files), "
                            "--policy / --value FILE, or --model NAME=FILE (the zoo's models exist only in an "
                            "rps_infer checkout)")
    entry = zoo.select(zoo.load_zoo(), [name])[0]
    zoo.build([entry])
    return entry.artifacts()[registry.get(backend).artifact]


def load_registry(config: ServerConfig, metrics: NullMetrics) -> ModelRegistry:
    """Load every model; each gets its own batcher when batching is on.

    The policy, value and ``--model`` models must load (the server does not start
    otherwise); a repository model that fails is served as not ready, with the reason. The
    zoo's policy and value are served when no ``--policy`` / ``--value`` / repository names them.
    """
    from rps_infer.runtime import pin_threads
    from rps_infer.serving.repository import check_name

    # Before any model is read: reading a .keras file initialises TensorFlow, whose threads
    # can be set only before that.
    pin_threads(config.intra_op_threads, (config.backend,))
    if config.model_name is not None and config.model_repository is None:
        raise RpsInferError("--model-name names the one model of a --model-repository; without one, name "
                            "models with --model NAME=FILE")
    models = []
    for kind, path in (("policy", config.policy), ("value", config.value)):
        # Without a repository the zoo's models stand in; with one, its policy.onnx / value.onnx
        # (a server image holds no zoo, and building one needs PyTorch).
        if path is not None or config.model_repository is None:
            models.append(load_model(kind, path or default_model_path(kind, config.backend), config, kind))
            if not config.allow_any_head:
                check_head(models[-1], path, config.precision)
    for name, path in config.models.items():
        check_name(name)
        if name in ("policy", "value"):
            raise RpsInferError(f"--model {name}=... clashes with the --{name} model; choose another name")
        models.append(load_model(name, path, config))
    server_batching = Batching(config.max_batch_size if config.batching else 0, (), config.batch_timeout_us)
    served = [(m, server_batching) for m in models]
    if config.model_repository is not None:
        served += load_repository(config, {m.name for m in models})
    for model, wanted in served:
        if model.ready:
            settle(model, wanted, metrics)
    return ModelRegistry([m for m, _ in served], ServingOptions(config.max_batch_size, config.allow_nonfinite))


def settle(model: ServedModel, wanted: Batching, metrics: NullMetrics) -> None:
    """Give ``model`` its batcher (never where its batch dim is fixed: merged requests would not
    fit), warm it up at the batch sizes it will see, and log what it serves with."""
    from rps_infer.inputs import make_feeds

    batching = wanted
    note = ""
    if wanted.max_batch_size and model.fixed_batch is not None:
        batching, note = Batching(), f" (its batch dim is fixed at {model.fixed_batch})"
    if batching.max_batch_size:
        model.batcher = AdaptiveBatcher(model.backend.infer, batching.max_batch_size, batching.max_queue_delay_us,
                                        preferred=batching.preferred_batch_sizes,
                                        on_batch=lambda rows, name=model.name: metrics.batch(name, rows))
    model.batching = batching
    # Warm-up, as Triton's model warm-up: the first calls allocate and compile; the server
    # reports ready only after (Kubernetes readiness probes included).
    sizes = {model.fixed_batch or 1, *(batching.preferred_batch_sizes or ())}
    for batch in sorted(sizes):
        feeds = make_feeds(model.input_specs, batch, seed=batch)
        try:
            for _ in range(3):
                model.backend.infer(feeds)
        except Exception as exc:  # a model that fails on generated inputs still serves the real ones
            log.warning("model %r: warm-up at batch %d failed (%s); serving it anyway", model.name, batch,
                        str(exc).splitlines()[0][:200])
    log.info("model %r version %s: %s on %s, inputs %s, %s%s, warmed up at batch %s", model.name, model.version,
             model.backend.name, model.backend.device, [s.describe() for s in model.input_specs],
             batching.describe(), note, sorted(sizes))


# How far a policy's rows may sum from 1, by precision: a reduced-precision variant has passed
# its own parity preset against the fp32 model; its rounding is not a missing softmax (seen:
# an INT8 policy's rows sum to 0.988-1).
HEAD_SUM_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3}
REDUCED_HEAD_SUM_TOLERANCE = 5e-2


def check_head(model: ServedModel, path: Path | None, precision: str = "fp32") -> None:
    """Refuse a NeuralService policy that does not output probabilities, or a value outside
    [0, 1], on realistic positions, naming the likely cause (:mod:`rps_infer.signatures`)."""
    from rps_infer.inputs import make_feeds
    from rps_infer.signatures import served_head_problem

    outputs = model.backend.infer(make_feeds(model.backend.input_specs, 64, seed=1))
    tolerance = HEAD_SUM_TOLERANCE.get(precision, REDUCED_HEAD_SUM_TOLERANCE)
    problem = served_head_problem(model.name, next(iter(outputs.values())), tolerance)
    if problem:
        raise RpsInferError(f"{path or 'the zoo model'}: the NeuralService {model.name} model must "
                            f"output {'probabilities' if model.name == 'policy' else 'values in [0, 1]'}; "
                            f"likely cause: {problem} (--allow-any-head serves it as it is)")


def load_repository(config: ServerConfig, taken: set[str]) -> list[tuple[ServedModel, Batching]]:
    """The repository's models not named in ``taken``, each with the batching asked for; one
    that fails to load is returned not ready, with the reason."""
    from dataclasses import replace

    from rps_infer.serving.repository import scan

    served = []
    for entry in named(scan(config.model_repository), config.model_name):
        if entry.name in taken:
            log.warning("repository model %r is shadowed by the command line's model of that name", entry.name)
            continue
        batched = _batching(config, entry)
        if entry.error is None:
            settings = replace(config, backend="onnxrt", device=entry.device or config.device,
                               precision=entry.precision or config.precision)
            try:
                kind = entry.name if entry.name in ("policy", "value") else None  # the NeuralService's
                model = load_model(entry.name, entry.path, settings, kind)
                if kind is not None and not config.allow_any_head:
                    check_head(model, entry.path, settings.precision)
                model.version = entry.version
                served.append((model, batched))
                continue
            except Exception as exc:  # any failure of one model must leave the others serving
                entry.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.error("model %r version %s failed to load and is not ready: %s", entry.name, entry.version, entry.error)
        served.append((ServedModel(entry.name, None, error=entry.error, version=entry.version), batched))
    return served


def named(entries: list, name: str | None) -> list:
    """``entries`` with a repository's one model (all its versions) renamed ``name``
    (``--model-name``); several models keep their names, and the log says so."""
    from dataclasses import replace

    from rps_infer.serving.repository import check_name

    if name is None:
        return entries
    check_name(name)
    found = sorted({e.name for e in entries})
    if len(found) != 1:
        log.info("--model-name %s not applied: the repository holds %d models (%s), served under their own names",
                 name, len(found), ", ".join(found) or "none")
        return entries
    return [replace(e, name=name) for e in entries]


def build_server(config: ServerConfig, registry: ModelRegistry, metrics: NullMetrics, reuse_port: bool):
    """The grpc.Server with both APIs, health and reflection; returns (server, health, port)."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from rps_infer.serving.protos import neural_pb2, predict_v2_pb2
    from rps_infer.serving.service import InferenceServicer, NeuralServicer, method_handlers

    limit = config.max_message_mb * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
               ("grpc.so_reuseport", 1 if reuse_port else 0)]
    token = security.read_token(config.security.auth_token_file)
    interceptors = [security.token_interceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.threads), options=options,
                         interceptors=interceptors)
    for name, servicer in zip(SERVICE_NAMES, (NeuralServicer(registry, metrics), InferenceServicer(registry, metrics)),
                              strict=True):
        server.add_registered_method_handlers(name, method_handlers(servicer))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, (neural_pb2.DESCRIPTOR.services_by_name["NeuralService"].full_name,
                               predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
                               health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
    credentials = security.server_credentials(config.security)
    address = f"{config.host}:{config.port}"
    try:  # grpcio returns 0 or raises RuntimeError, by version
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise RpsInferError(f"cannot bind {config.host}:{config.port} (in use or not an address of this host)")
    return server, health_servicer, port


def _batching(config: ServerConfig, entry) -> Batching:
    """The batching a repository model asks for in its sidecar, else the server's."""
    on = config.batching if entry.batching is None else entry.batching
    size = entry.max_batch_size if entry.max_batch_size is not None else (config.max_batch_size if on else 0)
    delay = entry.max_queue_delay_us if entry.max_queue_delay_us is not None else config.batch_timeout_us
    return Batching(size, entry.preferred_batch_sizes, delay)


def set_health(health_servicer, serving: bool) -> None:
    """Overall and per-service health."""
    from grpc_health.v1 import health_pb2

    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, status)


def run_worker(config: ServerConfig, reuse_port: bool, ready_fd: int | None = None, slot: int = 0) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code. Prints the readiness line
    (single process) or writes the port to ``ready_fd`` (a worker of a pool, whose metrics
    the supervisor serves on the one ``--metrics-port``, labelled ``worker`` = ``slot``)."""
    pooled = ready_fd is not None  # a pool's supervisor serves the metrics of all workers
    metrics = (PrometheusMetrics(None if pooled else config.metrics_port, config.host, worker=slot)
               if config.metrics_port else NullMetrics())
    registry = load_registry(config, metrics)
    metrics.track(registry.models)
    server, health_servicer, port = build_server(config, registry, metrics, reuse_port)
    http = start_http(config, registry, metrics, reuse_port)
    # Everything loaded so far lives as long as the server: keep it out of the garbage
    # collector's scans, which otherwise revisit it on every full collection.
    gc.collect()
    gc.freeze()
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status.identify(f"{config.host}:{port} pid {os.getpid()}")
    server.start()
    set_health(health_servicer, True)
    if ready_fd is None:
        if http is not None:
            print(HTTP_READY_LINE.format(host=config.host, port=http.port), flush=True)
        print(READY_LINE.format(host=config.host, port=port), flush=True)
    else:
        os.write(ready_fd, f"{port}\n".encode())
        os.close(ready_fd)
    while not stop.wait(0.5):
        pass
    log.info("signal received: draining for up to %.1f s", config.grace_s)
    registry.shutting_down = True
    set_health(health_servicer, False)
    server.stop(config.grace_s).wait()
    if http is not None:
        http.stop()
    return 0


def start_http(config: ServerConfig, registry: ModelRegistry, metrics: NullMetrics, reuse_port: bool):
    """The v2 REST API on ``--http-port`` (an :class:`~rps_infer.serving.http.HttpServer`
    accepting connections), or None when it is off."""
    if config.http_port is None:
        return None
    from rps_infer.serving.dataplane import DataPlane
    from rps_infer.serving.http import HttpServer, bind, build_app
    from rps_infer.serving.http_protocol import HttpLimits

    token = security.read_token(config.security.auth_token_file)
    limits = HttpLimits(config.max_message_mb << 20, config.http_header_timeout_s, config.http_body_timeout_s,
                        config.http_keepalive_timeout_s)
    http = HttpServer(build_app(DataPlane(registry), token, limits), bind(config.host, config.http_port, reuse_port),
                      config.security, limits, metrics)
    http.start()
    return http


def check_ports_free(config: ServerConfig) -> None:
    """Refuse, before any model loads, a port another process listens on (a bind test; the
    real bind comes later and can still lose a race, with the same message)."""
    import socket

    wanted = {"--port": config.port, "--http-port": config.http_port, "--metrics-port": config.metrics_port}
    for flag, port in wanted.items():
        if not port:
            continue
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.host, port))
            except OSError as exc:
                raise RpsInferError(f"{flag} {port}: cannot listen on {config.host}:{port}: {exc.strerror}"
                                    " (another process uses it, or the host is not an address here)") from None


def configure_logging(level: str) -> None:
    """Log to stderr; nothing is logged per request at INFO."""
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
