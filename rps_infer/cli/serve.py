"""``rps-infer serve``: serve models over gRPC (NeuralService and the Open Inference Protocol)."""

from __future__ import annotations

import argparse

from rps_infer.cli import args as common
from rps_infer.serving import poller
from rps_infer.serving.config import ServerConfig


def add_parser(sub) -> None:
    """Register the command; every default is :class:`~rps_infer.serving.config.ServerConfig`'s."""
    d = ServerConfig
    p = sub.add_parser("serve", help="serve models over gRPC and HTTP (NeuralService and Open Inference Protocol)",
                       description="Serve the policy and value models (default without a repository: the zoo's, "
                       "built on first use) on the NeuralService API and the Open Inference Protocol (KServe v2) "
                       "over gRPC (and HTTP/REST with --http-port), with health checking and reflection. Prints "
                       "'rps-infer serving on HOST:PORT' when ready; SIGTERM drains in-flight calls and exits 0.")
    p.add_argument("--policy", type=common.existing_file, help="policy model file (default: the repository's "
                   "policy.onnx, else the zoo's policy)")
    p.add_argument("--value", type=common.existing_file, help="value model file (default: the repository's "
                   "value.onnx, else the zoo's value)")
    p.add_argument("--model", type=common.name_path, action="append", default=[], metavar="NAME=PATH",
                   help="serve another model on the v2 API (repeatable)")
    p.add_argument("--model-repository", type=common.existing_folder, metavar="DIR",
                   help="also serve every DIR/<name>.onnx and DIR/<name>/<n>/model.onnx (version n) as <name> "
                   "(sidecar DIR/<name>.toml: backend, device, "
                   "precision, tolerance, max_batch_size, preferred_batch_sizes, max_queue_delay_us); one that "
                   "fails to load is not ready, the others serve")
    p.add_argument("--model-name", metavar="NAME", help="serve the --model-repository's one model as NAME "
                   "(KServe passes the InferenceService's name); a repository of several models keeps their "
                   "names, and the server logs that NAME was not applied")
    p.add_argument("--backend", choices=["onnxrt", "pyt", "tf"], default=d.backend)
    p.add_argument("--device", default=d.device, help="cpu, cuda, tensorrt, openvino, coreml, directml (onnxrt), "
                   "or auto: the best one that starts here and agrees with the CPU, logged with why each "
                   "better one was skipped")
    p.add_argument("--precision", default=d.precision, choices=["fp32", "fp16", "bf16", "int8"],
                   help="onnxrt: fp32, fp16, int8 (variants built beside the model, parity-checked); "
                   "pyt: fp32, fp16, bf16 autocast (default fp32)")
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=common.port, default=d.port, help=f"default {d.port}; 0 picks a free port")
    p.add_argument("--workers", type=common.count, default=d.workers,
                   help="processes sharing the ports (SO_REUSEPORT)")
    p.add_argument("--threads", type=common.count, default=d.threads,
                   help=f"gRPC handler threads per worker (default {d.threads})")
    p.add_argument("--grpc-poller", choices=poller.POLLERS, default=d.grpc_poller,
                   help=f"gRPC core's I/O path (default {d.grpc_poller}: polling on the serving thread, less CPU per "
                   "call here than grpcio's default event-engine threads; GRPC_EXPERIMENTS in the environment wins)")
    p.add_argument("--intra-op-threads", type=common.count, default=d.intra_op_threads,
                   help=f"threads per model inference (ORT intra-op without spinning, torch); default "
                   f"{d.intra_op_threads}")
    p.add_argument("--max-batch-size", type=common.count, default=d.max_batch_size,
                   help=f"largest batch a request may carry and the batcher may form (default {d.max_batch_size})")
    p.add_argument("--batch-timeout-us", type=common.non_negative_int, default=d.batch_timeout_us,
                   help="how long the batcher waits for more requests (default 0: no added wait)")
    p.add_argument("--batching", action=argparse.BooleanOptionalAction, default=d.batching,
                   help="adaptive batching of concurrent requests for every model whose batch dim is dynamic "
                   "(default off: it paid little or lost for the MLPs; a repository sidecar turns it on per model)")
    p.add_argument("--allow-any-head", action="store_true", help="serve a --policy that does not output "
                   "probabilities or a --value outside [0, 1] (refused by default, with the likely cause)")
    p.add_argument("--metrics-port", type=common.fixed_port, help="export Prometheus metrics on this port, "
                   "one endpoint for all --workers (labelled by worker); off by default")
    p.add_argument("--grace", type=common.non_negative_seconds, default=d.grace_s,
                   help=f"seconds in-flight calls get on SIGTERM (default {d.grace_s:g})")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_limits(p)
    _add_http(p)
    _add_security(p)


def _add_limits(p: argparse.ArgumentParser) -> None:
    d = ServerConfig
    g = p.add_argument_group("request limits (gRPC and HTTP)")
    g.add_argument("--max-message-mb", type=common.count, default=d.max_message_mb,
                   help=f"size limit of gRPC messages both ways and of HTTP request bodies (413 from their "
                   f"Content-Length, or as a chunked body passes it); default {d.max_message_mb}")
    g.add_argument("--allow-nonfinite", action="store_true", help="accept NaN/Inf inputs")


def _add_http(p: argparse.ArgumentParser) -> None:
    d = ServerConfig
    g = p.add_argument_group("HTTP (the v2 REST API)")
    g.add_argument("--http-port", type=common.port, default=d.http_port, metavar="PORT",
                   help="also serve the Open Inference Protocol's REST API (v2 over HTTP, curl and "
                   "tritonclient.http) on this port; 0 picks a free one; default off")
    g.add_argument("--http-header-timeout", type=common.seconds, default=d.http_header_timeout_s,
                   metavar="S", help="HTTP: a request's headers must arrive within S seconds of the connection's "
                   f"start or the request's first byte, else 408 and the connection closes (default "
                   f"{d.http_header_timeout_s:g})")
    g.add_argument("--http-body-timeout", type=common.seconds, default=d.http_body_timeout_s,
                   metavar="S", help="HTTP: longest wait for the next piece of a request body, else 408 "
                   f"(default {d.http_body_timeout_s:g})")
    g.add_argument("--http-keepalive-timeout", type=common.seconds,
                   default=d.http_keepalive_timeout_s, metavar="S",
                   help=f"HTTP: close a connection idle between requests this long (default "
                   f"{d.http_keepalive_timeout_s:g}: above common load balancers' 60 s, so they close first)")


def _add_security(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("security (gRPC and HTTP)")
    g.add_argument("--tls-cert", type=common.existing_file, metavar="PEM",
                   help="serve TLS only, with this certificate (chain)")
    g.add_argument("--tls-key", type=common.existing_file, metavar="PEM", help="the certificate's private key")
    g.add_argument("--tls-client-ca", type=common.existing_file, metavar="PEM",
                   help="mutual TLS: clients must present a certificate signed by this CA")
    g.add_argument("--auth-token-file", type=common.existing_file, metavar="FILE",
                   help="require 'authorization: Bearer <token>' (gRPC metadata, HTTP header) on every call but "
                   "health checks")
    g.add_argument("--insecure", action="store_true",
                   help="allow plaintext on an address other hosts can reach (refused without it)")


def config_of(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` the arguments describe."""
    from rps_infer.serving.security import SecurityConfig

    return ServerConfig(
        policy=args.policy, value=args.value, models=dict(args.model), model_repository=args.model_repository,
        backend=args.backend, device=args.device, precision=args.precision, host=args.host, port=args.port,
        http_port=args.http_port, grpc_poller=args.grpc_poller,
        workers=args.workers, threads=args.threads, intra_op_threads=args.intra_op_threads,
        max_batch_size=args.max_batch_size, batch_timeout_us=args.batch_timeout_us, batching=args.batching,
        max_message_mb=args.max_message_mb, allow_nonfinite=args.allow_nonfinite, model_name=args.model_name,
        http_header_timeout_s=args.http_header_timeout, http_body_timeout_s=args.http_body_timeout,
        http_keepalive_timeout_s=args.http_keepalive_timeout,
        allow_any_head=args.allow_any_head, metrics_port=args.metrics_port, grace_s=args.grace,
        security=SecurityConfig(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file, args.insecure))


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM."""
    poller.choose(args.grpc_poller)  # before anything imports grpc (serve() logs the choice)
    from rps_infer.serving.pool import serve
    from rps_infer.serving.server import configure_logging

    configure_logging(args.log_level)
    return serve(config_of(args))


