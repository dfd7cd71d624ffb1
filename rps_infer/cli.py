"""The ``rps-infer`` command line.

Exit codes: 0 success; 1 models disagree (``verify``, or a conversion refused for
a parity failure); 2 unusable input (bad file, unknown option value, missing
provider). Errors print one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rps_infer.backends.spec import BackendSpec
from rps_infer.errors import ParityError, RpsInferError
from rps_infer.version import VERSION

EXIT_OK, EXIT_MISMATCH, EXIT_UNUSABLE = 0, 1, 2
SHARED_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "neural_rps"


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def _tolerance_value(text: str) -> float:
    """A finite, non-negative float (argparse names the option when this raises)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be finite and non-negative, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also documents every command in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="rps-infer",
        description="Convert models between Go JSON, PyTorch, Keras and ONNX; prove they compute "
        "the same function; inspect them.",
    )
    parser.add_argument("--version", action="version", version=f"rps_infer {VERSION}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="convert a model, proving parity before writing",
                       description="Convert SRC (Go JSON, .pt or .keras) to another format. The new "
                       "file is compared with SRC at batch sizes 1, 3, 64 and written only if it agrees.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("--to", required=True, choices=["onnx", "torch", "keras", "gojson"])
    p.add_argument("--out", type=Path, help="output path (default: SRC with the target's suffix)")
    p.add_argument("--exporter", choices=["dynamo", "legacy"], default="dynamo",
                   help="PyTorch ONNX exporter (default: dynamo)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 18 from PyTorch, 17 from Keras); the dynamo "
                   "exporter writes 18-23, legacy 7-20, Keras 7-18; another is refused")
    p.add_argument("--kind", choices=["policy", "value"], help="override the kind detected from a Go JSON file")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=(1, 3, 64), metavar="1,3,64")

    p = sub.add_parser("quantize", help="CPU INT8 (QDQ) quantization of an ONNX model, parity proven",
                       description="Quantize an fp32 ONNX model with ONNX Runtime static quantization (QDQ, "
                       "per-channel weights), calibrated on generated inputs; written only if it passes the "
                       "int8 preset (image-int8: PSNR >= 35 dB for the U-Net).")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--out", type=Path, help="output path (default: MODEL.int8.onnx)")
    p.add_argument("--inputs", choices=["rps-positions", "uniform"], help="input generator (default: by shape)")

    p = sub.add_parser("verify", help="prove two model files compute the same function",
                       description="Run REFERENCE and CANDIDATE (Go JSON, .pt, .keras, .onnx) on the same "
                       "realistic positions and compare. Exit 0 when they agree, 1 when they don't, "
                       "2 for unusable input.")
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("candidate", metavar="CANDIDATE", nargs="?", help="a model file (or use --target)")
    p.add_argument("--target", metavar="HOST:PORT", help="check the model a running server serves instead of a "
                   "file (plaintext gRPC), on the same inputs and with the same verdict")
    p.add_argument("--model", help="with --target: the served model (neural API: policy or value)")
    p.add_argument("--api", choices=["neural", "v2"], default="neural",
                   help="with --target: NeuralService BatchPredict (default) or Open Inference Protocol ModelInfer")
    p.add_argument("--tolerance", help="tolerance preset (fp32, tf32, fp16, bf16, int8, image-fp32, image-fp16, "
                   "image-int8, proba-linear, proba-tree; default: the one the models name, else fp32)")
    p.add_argument("--atol", type=_tolerance_value, help="override the preset's absolute tolerance (with the "
                   "float32 allowance: added to it)")
    p.add_argument("--rtol", type=_tolerance_value, help="override the preset's relative tolerance (with the "
                   "float32 allowance: added to it)")
    p.add_argument("--layers", action="store_true", help="print the per-layer table on success too")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=(1, 3, 64), metavar="1,3,64")
    p.add_argument("--kind", choices=["policy", "value"], help="override the kind of a Go JSON file")
    p.add_argument("--seed", type=int, default=0, help="seed of the realistic positions (default 0)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")

    p = sub.add_parser("info", help="show a model's format, kind, sizes, inputs and outputs")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="the model zoo (models/zoo.toml)")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    b = msub.add_parser("build", help="build the zoo's artifacts into models/build/")
    b.add_argument("names", nargs="*", metavar="NAME", help="models or families (digits) to build (default: all)")
    b.add_argument("--force", action="store_true", help="rebuild even if up to date")
    msub.add_parser("list", help="list the zoo's models")

    p = sub.add_parser("bench", help="sweep backends x batch sizes in-process and write a report",
                       description="Check parity, then time every backend x batch size of a zoo model "
                       "in-process (one sample per call, warm-up excluded). Prints p50/p90/p99 latency, "
                       "items/s and speedup vs PyTorch eager; for image models also FPS at batch 1 and the "
                       "best batch, multi-process FPS (--processes) and the cost of serving (--cost-per-hour). "
                       "Writes JSON, CSV, Markdown and PNG plots under OUT/<timestamp>/. Backends that cannot "
                       "run here (no GPU, no provider) are listed as skipped with the reason.")
    p.add_argument("--model", default="policy", help="zoo model name (default: policy)")
    p.add_argument("--backends", default="",
                   help="comma-separated backend specs, e.g. onnxrt-cpu,pyt-cpu:channels_last,pyt-cpu:compile,"
                   "onnxrt-tensorrt:int8,onnxrt-cuda:iobinding (default: the model's backends from the zoo)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="run the ONNX Runtime backends at this precision (TensorRT: builder flags, INT8 with "
                   "a calibration table; other providers: a converted graph, parity-proven); default fp32")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=None, metavar="1,8,64,512",
                   help="default: the model's batch_sizes from the zoo")
    p.add_argument("--threads", type=int, default=1, help="threads per framework (default 1)")
    p.add_argument("--budget", type=float, default=0.5,
                   help="seconds of timed calls per case, at least 20 calls (default 0.5)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default: reports/)")
    g = p.add_argument_group("multi-process throughput and cost (in-process mode)")
    g.add_argument("--processes", type=int, metavar="N",
                   help="also run 1 and N independent inference processes per backend at batch 1 (one session "
                   "each, --threads threads each) and report aggregate FPS and scaling efficiency")
    g.add_argument("--process-seconds", type=float, default=10.0,
                   help="measured seconds of each multi-process run (default 10)")
    g.add_argument("--cost-per-hour", type=float, metavar="USD",
                   help="price of this machine per hour: adds the cost report")
    g.add_argument("--target-fps", type=float, default=250.0,
                   help="FPS to serve around the clock in the cost report (default 250: ten 25 FPS streams)")
    g.add_argument("--effort-hours", type=float, metavar="H", help="engineering hours the faster backend costs")
    g.add_argument("--hourly-rate", type=float, metavar="USD", help="engineering cost per hour (with --effort-hours)")
    p.add_argument("--compare", type=Path, metavar="OLD.json", help="print ratios against an earlier report.json")
    p.add_argument("--ab", nargs="+", metavar="REV",
                   help="BASE [HEAD]: time every backend x batch size against git revision BASE's rps_infer and "
                   "HEAD's (default: the working tree) in the same run, interleaved in worker processes as the "
                   "latency gate does; reports head/base ratios with intervals (ratios.png)")
    g = p.add_argument_group("over gRPC (with --target)")
    g.add_argument("--target", help="HOST:PORT of a running rps-infer serve: closed-loop load instead of in-process")
    g.add_argument("--api", default="neural", help="neural, v2 or neural,v2 (default neural)")
    g.add_argument("--concurrency", type=_batch_sizes, default=(1, 8, 32), metavar="1,8,32",
                   help="concurrent clients, from separate processes (default 1,8,32)")
    g.add_argument("--duration", type=float, default=10.0, help="measured seconds per case (default 10)")
    g.add_argument("--warmup", type=float, default=1.0, help="seconds per case not counted (default 1)")
    g.add_argument("--server-pid", type=int, action="append", default=[],
                   help="server process to read CPU time from (repeatable; its workers are included)")
    g.add_argument("--echo", action="store_true", help="also load a bare grpcio echo server (the transport floor)")
    g.add_argument("--inprocess", action="store_true", help="also time the same model in-process")

    p = sub.add_parser("serve", help="serve models over gRPC (NeuralService and Open Inference Protocol)",
                       description="Serve the policy and value models (default: the zoo's, built on first use) "
                       "on the NeuralService API and the Open Inference Protocol (KServe v2) gRPC API, with "
                       "health checking and reflection. Prints 'rps-infer serving on HOST:PORT' when ready; "
                       "SIGTERM drains in-flight calls and exits 0.")
    p.add_argument("--policy", type=Path, help="policy model file (default: the zoo's policy)")
    p.add_argument("--value", type=Path, help="value model file (default: the zoo's value)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="serve another model on the v2 API (repeatable)")
    p.add_argument("--model-repository", type=Path, metavar="DIR",
                   help="also serve every DIR/<name>.onnx as <name> (sidecar DIR/<name>.toml: backend, device, "
                   "precision, batching, tolerance); one that fails to load is not ready, the others serve")
    p.add_argument("--backend", choices=["onnxrt", "pyt", "tf"], default="onnxrt")
    p.add_argument("--device", default="cpu", help="cpu, cuda, tensorrt, openvino, coreml, directml (onnxrt)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8"],
                   help="onnxrt: fp32, fp16, int8 (variants built beside the model, parity-checked); "
                   "pyt: fp32, fp16, bf16 autocast (default fp32)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50053, help="default 50053; 0 picks a free port")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    p.add_argument("--threads", type=int, default=16, help="gRPC handler threads per worker (default 16)")
    p.add_argument("--intra-op-threads", type=int, default=1,
                   help="threads per model inference (ORT intra-op without spinning, torch); default 1")
    p.add_argument("--max-batch-size", type=int, default=512,
                   help="largest batch a request may carry and the batcher may form (default 512)")
    p.add_argument("--batch-timeout-us", type=int, default=0,
                   help="how long the batcher waits for more requests (default 0: no added wait)")
    p.add_argument("--no-batching", action="store_true", help="one backend call per request")
    p.add_argument("--max-message-mb", type=int, default=64, help="gRPC message size limit both ways (default 64)")
    p.add_argument("--allow-nonfinite", action="store_true", help="accept NaN/Inf inputs")
    p.add_argument("--allow-any-head", action="store_true", help="serve a --policy that does not output "
                   "probabilities or a --value outside [0, 1] (refused by default, with the likely cause)")
    p.add_argument("--metrics-port", type=int, help="export Prometheus metrics on this port (off by default)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds in-flight calls get on SIGTERM (default 10)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    g = p.add_argument_group("security")
    g.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve TLS only, with this certificate (chain)")
    g.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    g.add_argument("--tls-client-ca", type=Path, metavar="PEM",
                   help="mutual TLS: clients must present a certificate signed by this CA")
    g.add_argument("--auth-token-file", type=Path, metavar="FILE",
                   help="require 'authorization: Bearer <token>' metadata on every call but health checks")
    g.add_argument("--insecure", action="store_true",
                   help="allow plaintext on an address other hosts can reach (refused without it)")

    p = sub.add_parser("soak", help="mixed traffic against a running server, watched over time",
                       description="Closed-loop clients (threads in a few processes) cycle through Predict, "
                       "BatchPredict and ModelInfer against a running rps-infer serve (the zoo's policy and value) "
                       "and report per interval requests, errors, req/s, p50/p99 and the server's resident "
                       "memory. Exits 1 on any error or stuck call (unanswered after 10 s), or when the memory "
                       "growth after warm-up exceeds --max-rss-growth.")
    p.add_argument("--target", required=True, help="HOST:PORT of the server")
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds after warm-up (default 60)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds not counted (default 3)")
    p.add_argument("--concurrency", type=int, default=32, help="client threads in all (default 32)")
    p.add_argument("--processes", type=int, help="client processes (default: one per core)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds per reported window (default 1)")
    p.add_argument("--server-pid", type=int, action="append", default=[],
                   help="server process whose memory (with its workers) is sampled (repeatable)")
    p.add_argument("--max-rss-growth", type=float, metavar="FRACTION",
                   help="fail when server memory grows by more than this after warm-up (e.g. 0.10)")
    p.add_argument("--out", type=Path, help="also write soak.json into this folder")

    p = sub.add_parser("demo", help="build the zoo and print parity matrices",
                       description="Build the bundled models and print, for them and for every Go file "
                       "in ../shared/neural_rps, the max abs error between every pair of numpy / "
                       "PyTorch / Keras / ONNX-from-PyTorch / ONNX-from-Keras.")
    p.add_argument("--shared", type=Path, default=SHARED_MODELS,
                   help=f"folder of Go-trained .model files (default: {SHARED_MODELS})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rps-infer`` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command the reports record
    if args.debug:  # what exporters printed (captured: never a bare traceback without --debug)
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("rps_infer.export").setLevel(logging.DEBUG)
    try:
        return COMMANDS[args.command](args)
    except ParityError as exc:
        print(exc, file=sys.stderr)
        return EXIT_MISMATCH
    except (RpsInferError, OSError) as exc:
        if args.debug:
            raise
        print(f"rps-infer {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130


def cmd_convert(args: argparse.Namespace) -> int:
    """``rps-infer convert``."""
    from rps_infer.convert import convert

    result = convert(args.source, args.to, args.out, exporter=args.exporter, opset=args.opset,
                     kind=args.kind, batch_sizes=args.batch_sizes)
    print(f"wrote {result.path} (parity proven at batch sizes "
          f"{', '.join(map(str, result.report.results))}: max abs error {result.report.max_abs_error():.3g})")
    return EXIT_OK


def cmd_quantize(args: argparse.Namespace) -> int:
    """``rps-infer quantize``."""
    from rps_infer.convert.quantize import quantize_int8

    source = Path(args.model)
    out = args.out or source.with_suffix(".int8.onnx")
    report = quantize_int8(source, out, generator=args.inputs)
    psnr = [o.psnr_db for r in report.results.values() for o in r.outputs if o.psnr_db is not None]
    detail = f", PSNR >= {min(psnr):.1f} dB" if psnr else ""
    print(f"wrote {out} (parity proven: max abs error {report.max_abs_error():.3g}{detail})")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``rps-infer verify``."""
    from rps_infer.compare import tolerance
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend
    from rps_infer.verify import compare_backends, compare_models

    if (args.candidate is None) == (args.target is None):
        raise RpsInferError("give a CANDIDATE file or --target HOST:PORT (one of them)")
    if args.target and not args.model:
        raise RpsInferError("--target needs --model NAME (the neural API serves policy and value)")
    try:
        reference = open_model(args.reference, args.kind)
        candidate = open_model(args.candidate, args.kind) if args.candidate else None
        tol = tolerance(args.tolerance or (candidate or reference).tolerance, args.atol, args.rtol)
    except KeyError as exc:
        raise RpsInferError(exc.args[0]) from None
    if candidate is not None:
        report = compare_models(reference, candidate, batch_sizes=args.batch_sizes, tol=tol, seed=args.seed)
    else:
        from rps_infer.backends.remote import RemoteBackend

        with open_backend(reference) as ref, RemoteBackend(args.target, args.model, args.api) as served:
            report = compare_backends(ref, served, batch_sizes=args.batch_sizes, tol=tol, weights=reference.weights,
                                      seed=args.seed, generator=reference.inputs, reference_label=reference.label,
                                      candidate_label=f"{args.model} at {args.target} ({args.api} API)")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render(layers=args.layers))
        for line in report.failures():
            print(f"mismatch: {line}", file=sys.stderr)
    return EXIT_OK if report else EXIT_MISMATCH


def cmd_info(args: argparse.Namespace) -> int:
    """``rps-infer info``."""
    from rps_infer.formats import open_model

    model = open_model(args.model)
    from rps_infer.runtime import open_backend

    info: dict = {"path": str(model.path), "format": model.format, "kind": model.kind}
    if model.weights is not None:
        w = model.weights
        info["sizes"] = {"input": w.input_size, "hidden": w.hidden_size, "output": w.output_size}
    with open_backend(model) as backend:
        info["inputs"] = [spec.describe() for spec in backend.input_specs]
        info["outputs"] = [spec.describe() for spec in backend.output_specs]
        info["runtime"] = {k: v for k, v in backend.describe().items() if k not in ("inputs", "outputs")}
    info["metadata"] = model.metadata
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:9} {value}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """``rps-infer models build|list``."""
    import rps_infer.zoo as zoo

    entries = zoo.load_zoo()
    if args.models_command == "list":
        for e in entries.values():
            params = e.params.model_dump()
            source = e.source.name if e.source is not None else ", ".join(f"{k}={v}" for k, v in params.items())
            print(f"{e.name:14} {e.family:8} {source:24} tolerance={e.tolerance} ci={e.ci} built={e.is_built()}")
        return EXIT_OK
    selected = zoo.select(entries, args.names)
    zoo.build(selected, force=args.force, progress=lambda msg: print(f"  {msg}"))
    for e in selected:
        print(f"{e.name}: {e.onnx_path}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    """``rps-infer bench``."""
    import rps_infer.zoo as zoo
    from rps_infer.bench import report as reports
    from rps_infer.bench.machine import machine_info
    from rps_infer.bench.sweep import stderr_progress, sweep
    from rps_infer.runtime import pin_threads

    old = _read_report(args.compare) if args.compare else None
    if args.target:
        return _bench_grpc(args, old)
    if args.ab:
        return _bench_ab(args)
    if (args.effort_hours is None) != (args.hourly_rate is None):
        raise RpsInferError("--effort-hours and --hourly-rate go together (break-even = effort x rate / savings)")
    if args.processes is not None and args.processes < 1:
        raise RpsInferError(f"--processes takes a positive number, got {args.processes}")
    entry, backends = _bench_selection(args)
    zoo.build([entry])
    pin_threads(args.threads, ("pyt", "tf") if any(b.startswith("tf") for b in backends) else ("pyt",))
    result = sweep(entry, backends, args.batch_sizes or entry.batch_sizes, threads=args.threads,
                   budget_s=args.budget, progress=stderr_progress)
    if not result.rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
        raise RpsInferError(f"nothing was measured ({reasons})")
    report = {"created": reports.timestamp(), "machine": machine_info(),
              "command": " ".join(["rps-infer", *args.argv]), **result.to_dict()}
    if entry.family == "unet" or args.processes or args.cost_per_hour:
        _fps_and_cost(args, entry, report)
    paths = reports.write_report(report, args.out / report["created"])
    print(f"{entry.name} on {reports.machine_line(report)}")
    print("\n".join(reports.table_lines(report)))
    if report.get("fps"):
        print("\n".join(["", *reports.fps_table_lines(report)]))
    if old is not None:
        print("\n".join(reports.compare_lines(old, report)))
    print(f"report: {paths['md'].parent}/ ({', '.join(p.name for p in paths.values())})")
    return EXIT_OK


def _bench_selection(args: argparse.Namespace):
    """The zoo entry and backend specs ``bench`` runs, validated before any work."""
    import rps_infer.zoo as zoo

    if args.threads < 1:
        raise RpsInferError(f"--threads takes a number >= 1, got {args.threads}")
    entry = zoo.select(zoo.load_zoo(), [args.model])[0]
    specs = [BackendSpec.parse(b) for b in args.backends.split(",") if b] or [BackendSpec.parse(b)
                                                                             for b in entry.backends]
    return entry, list(dict.fromkeys(str(s.with_precision(args.precision)) for s in specs))


def _bench_ab(args: argparse.Namespace) -> int:
    """``rps-infer bench --ab BASE [HEAD]``."""
    from rps_infer.bench import abbench
    from rps_infer.bench import report as reports
    from rps_infer.bench.machine import machine_info
    from rps_infer.bench.revisions import REPO_ROOT
    from rps_infer.bench.schemas import load_gate_config
    from rps_infer.bench.sweep import stderr_progress

    if len(args.ab) > 2:
        raise RpsInferError(f"--ab takes BASE [HEAD], got {len(args.ab)} revisions")
    entry, backends = _bench_selection(args)
    report = abbench.ab_sweep(REPO_ROOT, args.ab[0], args.ab[1] if len(args.ab) > 1 else None, entry.name,
                              backends, args.batch_sizes or entry.batch_sizes, config=load_gate_config(REPO_ROOT),
                              threads=args.threads, progress=stderr_progress)
    report.update(created=reports.timestamp(), machine=machine_info(), command=" ".join(["rps-infer", *args.argv]))
    paths = reports.write_report(report, args.out / report["created"])
    print(f"{entry.name} A/B on {reports.machine_line(report)}")
    print("\n".join(abbench.table_lines(report)))
    print(f"report: {paths['md'].parent}/ ({', '.join(p.name for p in paths.values())})")
    return EXIT_OK


def _fps_and_cost(args: argparse.Namespace, entry, report: dict) -> None:
    """Add the multi-process runs, the FPS rows and (given a price) the cost rows to ``report``."""
    from rps_infer.bench import cost
    from rps_infer.bench.processes import run_processes, scaling
    from rps_infer.bench.sweep import stderr_progress

    runs = []
    for spec in dict.fromkeys(r["backend"] for r in report["rows"]) if args.processes else ():
        counts = (1, args.processes) if args.processes > 1 else (1,)
        single = None
        for n in counts:
            stderr_progress(f"{spec}: {n} process(es) for {args.process_seconds:g} s")
            run = run_processes(entry, spec, processes=n, threads=args.threads, duration_s=args.process_seconds)
            single = single or run
            run.scaling_efficiency = scaling(single, run)
            runs.append(run.to_dict())
    report["processes"] = runs
    fps = cost.fps_rows(report["rows"], runs)
    report["fps"] = cost.as_dicts(fps)
    if args.cost_per_hour:
        rows = cost.cost_rows(fps, cost_per_hour=args.cost_per_hour, target_fps=args.target_fps,
                              effort_hours=args.effort_hours, hourly_rate=args.hourly_rate)
        report["cost"] = {"cost_per_hour": args.cost_per_hour, "target_fps": args.target_fps,
                          "hours_per_month": cost.HOURS_PER_MONTH, "effort_hours": args.effort_hours,
                          "hourly_rate": args.hourly_rate, "rows": cost.as_dicts(rows)}


def _bench_grpc(args: argparse.Namespace, old: dict | None) -> int:
    from rps_infer.bench import report as reports
    from rps_infer.bench.grpc_bench import grpc_sweep
    from rps_infer.bench.load import APIS
    from rps_infer.bench.machine import machine_info
    from rps_infer.bench.sweep import stderr_progress

    apis = [a for a in args.api.split(",") if a]
    if not apis or any(a not in APIS for a in apis):
        raise RpsInferError(f"--api takes {' or '.join(APIS)} (comma-separated), got {args.api!r}")
    rows = grpc_sweep(args.target, apis, args.model, args.batch_sizes or (1, 64), args.concurrency,
                      duration_s=args.duration, warmup_s=args.warmup, server_pids=args.server_pid or None,
                      echo=args.echo, inprocess=args.inprocess, progress=stderr_progress)
    report = {"kind": "grpc", "created": reports.timestamp(), "machine": machine_info(),
              "command": " ".join(["rps-infer", *args.argv]), "model": args.model, "target": args.target,
              "duration_s": args.duration, "warmup_s": args.warmup, "rows": rows}
    paths = reports.write_report(report, args.out / report["created"])
    print(f"{args.model} over gRPC at {args.target}; client on {reports.machine_line(report)}")
    print("\n".join(reports.grpc_table_lines(report)))
    if old is not None and old.get("kind") == "grpc":
        print("\n".join(reports.grpc_compare_lines(old, report)))
    print(f"report: {paths['md'].parent}/ (report.json, report.csv, report.md, latency.png, throughput.png)")
    return EXIT_OK


def _read_report(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RpsInferError(f"cannot read report {path}: {exc}") from None
    if not isinstance(data, dict) or "rows" not in data or "machine" not in data:
        raise RpsInferError(f"{path} is not an rps-infer bench report.json (no 'rows'/'machine')")
    return data


def cmd_soak(args: argparse.Namespace) -> int:
    """``rps-infer soak``."""
    from rps_infer.bench.soak import run_soak, summary_lines
    from rps_infer.bench.sweep import stderr_progress
    from rps_infer.util import atomic_write

    if args.duration <= 0 or args.concurrency < 1 or args.interval <= 0:
        raise RpsInferError("--duration and --interval must be positive and --concurrency at least 1")
    result = run_soak(args.target, duration_s=args.duration, concurrency=args.concurrency,
                      processes=args.processes, server_pids=args.server_pid or None, warmup_s=args.warmup,
                      interval_s=args.interval, progress=stderr_progress)
    print("\n".join(summary_lines(result)))
    if args.out:
        path = args.out / "soak.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8"))
        print(f"report: {path}")
    failed = sum(result.errors.values()) > 0 or result.stuck > 0
    if args.max_rss_growth is not None and result.rss_growth is not None:
        failed |= result.rss_growth > args.max_rss_growth
    return EXIT_MISMATCH if failed else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """``rps-infer serve``."""
    from rps_infer.serving.security import SecurityConfig
    from rps_infer.serving.server import ServerConfig, configure_logging, serve

    models = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise RpsInferError(f"--model expects NAME=PATH, got {item!r}")
        models[name] = Path(path)
    configure_logging(args.log_level)
    config = ServerConfig(
        policy=args.policy, value=args.value, models=models, model_repository=args.model_repository,
        backend=args.backend, device=args.device,
        precision=args.precision, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
        intra_op_threads=args.intra_op_threads,
        max_batch_size=args.max_batch_size, batch_timeout_us=args.batch_timeout_us, batching=not args.no_batching,
        max_message_mb=args.max_message_mb, allow_nonfinite=args.allow_nonfinite,
        allow_any_head=args.allow_any_head, metrics_port=args.metrics_port,
        grace_s=args.grace,
        security=SecurityConfig(args.tls_cert, args.tls_key, args.tls_client_ca, args.auth_token_file, args.insecure))
    return serve(config)


def cmd_demo(args: argparse.Namespace) -> int:
    """``rps-infer demo``: build the zoo and print a parity matrix per model."""
    import rps_infer.zoo as zoo

    entries = {name: e for name, e in zoo.load_zoo().items() if e.ci}  # unet-full: on demand
    print("Building the model zoo (every conversion proves parity before it writes)...")
    zoo.build(list(entries.values()), progress=lambda msg: print(f"  {msg}"))
    all_pass = True
    for e in entries.values():
        if e.family == "rps-mlp":
            all_pass &= _print_matrix(f"zoo model {e.name!r} ({e.source.name})", e.source, e.artifacts())
        elif e.family == "digits":
            all_pass &= _print_classifier_parity(e)
        else:
            all_pass &= _print_image_parity(e)
    classifiers = [e for e in entries.values() if e.family == "digits"]
    if classifiers:
        all_pass &= _print_served_classifiers(classifiers)
    shared = sorted(args.shared.glob("*.model")) if args.shared.is_dir() else []
    if not shared:
        print(f"\n(skipping the Go-trained models: no .model files in {args.shared})")
    from rps_infer.families.mlp import build_artifacts

    with tempfile.TemporaryDirectory(prefix="rps-demo-") as tmp:
        for path in shared:
            out = Path(tmp) / path.stem
            artifacts = {"onnx": out / "model.onnx", "pt": out / "model.pt",
                         "keras": out / "model.keras", "keras_onnx": out / "keras.onnx"}
            build_artifacts(path, artifacts)
            all_pass &= _print_matrix(f"Go-trained {path.name}", path, artifacts)
    print("\nmax abs error between every pair on realistic positions at batch 1, 3, 64; "
          "FAIL marks a pair outside the fp32 tolerance plus the float32 rounding bound")
    return EXIT_OK if all_pass else EXIT_MISMATCH


def _print_classifier_parity(entry) -> bool:
    from rps_infer.nets.digits import split
    from rps_infer.verify import compare_backends

    rows = len(split()[1])
    report = compare_backends(entry.reference_backend(), entry.backend("onnxrt-cpu"), batch_sizes=(rows,),
                              tol=entry.tolerance, generator=entry.inputs, reference_label="native",
                              candidate_label="ONNX")
    (result,) = report.results.values()
    errors = {o.name: o for o in result.outputs}
    print(f"\nzoo model {entry.name!r} ({entry.params.estimator}): ONNX vs native on the {rows} test digits: "
          f"labels {'identical' if errors['label'].failing == 0 else 'DIFFER'}, probabilities max abs "
          f"{errors['probabilities'].max_abs:.1e} ({entry.tolerance}): {'PASS' if report else 'FAIL'}")
    return bool(report)


def _print_served_classifiers(entries) -> bool:
    """Serve the build folder as a model repository and show label and score of a few digits."""
    from rps_infer.client import V2Client
    from rps_infer.nets.digits import split
    from rps_infer.serving.launch import ServerProcess, serve_command

    repository = entries[0].onnx_path.parent
    x_test, y_test = split()[1][:6], split()[3][:6]
    print(f"\nrps-infer serve --model-repository {repository}: label (score) of the first "
          f"{len(y_test)} test digits over the v2 API")
    print(f"  {'true label':14} " + " ".join(f"{int(y):>8}" for y in y_test))
    agree = True
    with ServerProcess(serve_command("--model-repository", str(repository))) as server, \
            V2Client(server.target) as client:
        client.wait_ready()
        for e in entries:
            out = client.infer(e.name, {"input": x_test})
            labels, scores = out["label"], out["probabilities"][range(len(y_test)), out["label"]]
            expected = e.reference_backend().infer({"input": x_test})["label"]
            agree &= bool((labels == expected).all())
            print(f"  {e.name:14} " + " ".join(f"{int(k)} ({p:.2f})" for k, p in zip(labels, scores, strict=True)))
    print(f"  served labels {'match' if agree else 'DO NOT match'} the native models' predictions")
    return agree


def _print_image_parity(entry) -> bool:
    from rps_infer.verify import compare_backends

    report = compare_backends(entry.reference_backend(), entry.backend("onnxrt-cpu"), batch_sizes=(1, 3),
                              tol=entry.tolerance, generator=entry.inputs, reference_label="PyTorch",
                              candidate_label="ONNX")
    worst = min((o.psnr_db for r in report.results.values() for o in r.outputs), default=float("nan"))
    print(f"\nzoo model {entry.name!r} ({entry.family}): ONNX vs PyTorch max abs {report.max_abs_error():.2e}, "
          f"PSNR >= {worst:.1f} dB: {'PASS' if report else 'FAIL'}")
    return bool(report)


def _print_matrix(title: str, source: Path, artifacts: dict[str, Path]) -> bool:
    from rps_infer.formats import open_model
    from rps_infer.runtime import open_backend
    from rps_infer.verify import format_matrix, parity_matrix

    src = open_model(source)
    w = src.weights
    runners = {
        "numpy-fp64": open_backend(src, "numpy"),
        "PyTorch": open_backend(artifacts["pt"]),
        "Keras": open_backend(artifacts["keras"]),
        "ONNX(pt)": open_backend(artifacts["onnx"]),
        "ONNX(keras)": open_backend(artifacts["keras_onnx"]),
    }
    pairs = parity_matrix(runners, w)
    print(f"\n{title}: {w.kind} {w.input_size}-{w.hidden_size}-{w.output_size}")
    print(format_matrix(list(runners), pairs))
    for r in runners.values():
        r.deactivate()
    return all(pairs.values())


COMMANDS = {"soak": cmd_soak, "convert": cmd_convert, "quantize": cmd_quantize, "verify": cmd_verify, "info": cmd_info,
            "models": cmd_models, "bench": cmd_bench, "serve": cmd_serve, "demo": cmd_demo}


if __name__ == "__main__":
    sys.exit(main())
