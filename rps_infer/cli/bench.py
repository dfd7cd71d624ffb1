"""``rps-infer bench``: in-process sweeps, A/B of two revisions, load over gRPC; reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import rps_infer.defaults as defaults
from rps_infer import progress
from rps_infer.cli import args as common
from rps_infer.errors import RpsInferError


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("bench", help="sweep backends x batch sizes in-process and write a report",
                       description="Check parity, then time every backend x batch size of a zoo model "
                       "(--model) or of any model file (MODEL_FILE: ONNX, PyTorch, Keras, SavedModel; parity "
                       "against --reference, else the file on its own backend) "
                       "in-process (one sample per call, warm-up excluded). Prints p50/p99 latency with its spread "
                       "(fastest call, IQR), measured items/s and speedup vs PyTorch eager; for image models also "
                       "FPS at batch 1 and the best batch, multi-process FPS (--processes) and the cost of serving "
                       "(--cost-per-hour). "
                       "Writes JSON, CSV, Markdown and PNG plots under OUT/<timestamp>/, recording the git commit and "
                       "each model file's sha256. Backends that cannot "
                       "run here (no GPU, no provider) are listed as skipped with the reason.")
    p.add_argument("model_file", nargs="?", type=common.existing_path, metavar="MODEL_FILE",
                   help="a model file to time instead of a zoo model")
    p.add_argument("--model", default="policy", help="zoo model name (default: policy)")
    p.add_argument("--reference", type=common.existing_path, metavar="FILE",
                   help="with MODEL_FILE: judge parity against this model file (e.g. the PyTorch original)")
    p.add_argument("--backends", default="",
                   help="comma-separated backend specs, e.g. onnxrt-cpu,pyt-cpu:channels_last,pyt-cpu:compile,"
                   "onnxrt-tensorrt:int8,onnxrt-cuda:iobinding; device auto (onnxrt-auto) picks the best device "
                   "that starts and agrees with the CPU, and says why (default: the model's backends from the zoo)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="run the ONNX Runtime backends at this precision (TensorRT: builder flags, INT8 with "
                   "a calibration table; other providers: a converted graph, parity-proven); default fp32")
    p.add_argument("--batch-sizes", type=common.batch_sizes, default=None, metavar="1,8,64,512",
                   help="default: the model's batch_sizes from the zoo")
    common.add_threads(p, f"threads per framework (default {defaults.BENCH_THREADS})")
    p.add_argument("--budget", type=common.seconds, default=defaults.BENCH_BUDGET_S,
                   help=f"seconds of timed calls per case, at least 20 calls (default {defaults.BENCH_BUDGET_S})")
    p.add_argument("--out", type=common.writable_folder, default=Path("reports"),
                   help="report folder (default: reports/)")
    _cost_options(p)
    p.add_argument("--compare", type=common.existing_file, metavar="OLD.json",
                   help="print ratios against an earlier report.json")
    p.add_argument("--ab", nargs="+", metavar="REV",
                   help="BASE [HEAD]: time every backend x batch size against git revision BASE's rps_infer and "
                   "HEAD's (default: the working tree) in the same run, interleaved in worker processes as the "
                   "latency gate does; reports head/base ratios with intervals (ratios.png)")
    _grpc_options(p)
    common.add_model_hints(p)
    common.add_inputs(p)


def _cost_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-process throughput and cost (in-process mode)")
    g.add_argument("--processes", type=common.count, metavar="N",
                   help="also run 1 and N independent inference processes per backend at batch 1 (one session "
                   "each, --threads threads each) and report aggregate FPS and scaling efficiency")
    g.add_argument("--process-seconds", type=common.seconds, default=defaults.PROCESS_SECONDS,
                   help=f"measured seconds of each multi-process run (default {defaults.PROCESS_SECONDS:g})")
    g.add_argument("--cost-per-hour", type=common.positive, metavar="USD",
                   help="price of this machine per hour: adds the cost report")
    g.add_argument("--target-fps", type=common.positive, default=defaults.TARGET_FPS,
                   help=f"FPS to serve around the clock in the cost report (default {defaults.TARGET_FPS:g}: "
                   "ten 25 FPS streams)")
    g.add_argument("--effort-hours", type=common.positive, metavar="H",
                   help="engineering hours the faster backend costs")
    g.add_argument("--hourly-rate", type=common.positive, metavar="USD",
                   help="engineering cost per hour (with --effort-hours)")


def _grpc_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("over gRPC (with --target)")
    g.add_argument("--target", type=common.target, metavar="HOST:PORT[,HOST:PORT...]",
                   help="HOST:PORT of a running rps-infer serve: closed-loop load instead of in-process; replicas "
                   "as a comma list or dns:///NAME:PORT (round robin; a call a replica dropped is retried; prints "
                   "which replica answered how many calls)")
    g.add_argument("--api", default="neural", help="neural, v2 or neural,v2 (default neural)")
    g.add_argument("--concurrency", type=common.batch_sizes, default=(1, 8, 32), metavar="1,8,32",
                   help="concurrent clients, from separate processes (default 1,8,32)")
    g.add_argument("--duration", type=common.seconds, default=10.0, help="measured seconds per case (default 10)")
    g.add_argument("--warmup", type=common.non_negative_seconds, default=defaults.LOAD_WARMUP_S,
                   help=f"seconds per case not counted (default {defaults.LOAD_WARMUP_S:g})")
    g.add_argument("--server-pid", type=common.count, action="append", default=[],
                   help="server process to read CPU time from (repeatable; its workers are included)")
    g.add_argument("--rate", type=common.positive, metavar="REQ_PER_S",
                   help="open loop: send this many requests per second over all clients on a fixed schedule, "
                   "latency counted from each request's intended send time (default: closed loop)")
    g.add_argument("--echo", action="store_true",
                   help="also load the bare grpcio echoes: sync and aio, each also on the iomgr I/O path the "
                   "service takes (the transport floor: the fastest of them)")
    g.add_argument("--naive", action="store_true",
                   help="also load the naive reference server (plain grpcio + ONNX Runtime, the script the service "
                   "replaces; NeuralService only)")
    g.add_argument("--inprocess", action="store_true", help="also time the same model in-process")


def run(args: argparse.Namespace) -> int:
    """Run the chosen mode, print its table, write the report files."""
    from rps_infer.bench import report as reports
    from rps_infer.bench import runs
    from rps_infer.bench.machine import machine_line

    old = _read_report(args.compare) if args.compare else None
    command = " ".join(["rps-infer", *args.argv])
    if args.target:
        from rps_infer.client import check_pids, check_target

        check_pids(args.server_pid)
        check_target(args.target)
        report = runs.grpc(args.target, [a for a in args.api.split(",") if a], args.model,
                           args.batch_sizes or (1, 64), args.concurrency, duration_s=args.duration,
                           warmup_s=args.warmup, server_pids=args.server_pid or None, echo=args.echo,
                           naive=args.naive, inprocess=args.inprocess, rate=args.rate, command=command,
                           progress=progress.status)
        title = f"{args.model} over gRPC at {args.target}; client on {machine_line(report)}"
        return _finish(report, title, reports.grpc_table_lines(report), args.out,
                       reports.grpc_compare_lines(old, report) if old and old.get("kind") == "grpc" else [])
    entry, backends = runs.selection(_file_entry(args) if args.model_file else args.model,
                                     [b for b in args.backends.split(",") if b], args.precision)
    batch_sizes = args.batch_sizes or entry.batch_sizes
    if args.ab:
        report = runs.ab(args.ab, entry, backends, batch_sizes, threads=args.threads, command=command,
                         progress=progress.status)
        from rps_infer.bench.abbench import table_lines

        return _finish(report, f"{entry.name} A/B on {machine_line(report)}", table_lines(report), args.out)
    if (args.effort_hours is None) != (args.hourly_rate is None):
        raise RpsInferError("--effort-hours and --hourly-rate go together (break-even = effort x rate / savings)")
    cost = runs.CostSettings(args.processes, args.process_seconds, args.cost_per_hour, args.target_fps,
                             args.effort_hours, args.hourly_rate)
    report = runs.inprocess(entry, backends, batch_sizes, threads=args.threads, budget_s=args.budget, cost=cost,
                            command=command, inputs=common.inputs_of(args, entry.inputs), progress=progress.status)
    outputs = report.pop("_outputs", {})
    if args.save_outputs:
        from rps_infer.cli.verify import write_npz

        write_npz(args.save_outputs, outputs)
    lines = reports.table_lines(report) + (["", *reports.fps_table_lines(report)] if report.get("fps") else [])
    return _finish(report, f"{entry.name} on {machine_line(report)}", lines, args.out,
                   reports.compare_lines(old, report) if old is not None else [])


def _file_entry(args: argparse.Namespace):
    """MODEL_FILE (and --reference) as an entry to time."""
    import rps_infer.zoo as zoo

    if args.target or args.ab:
        raise RpsInferError("MODEL_FILE is timed in-process: --target and --ab take zoo models (--model)")
    return zoo.file_entry(args.model_file, backends=[b for b in args.backends.split(",") if b],
                          batch_sizes=args.batch_sizes or (1, 8, 64), reference=args.reference,
                          hints=common.hints_of(args))


def _finish(report: dict, title: str, lines: list[str], out: Path, extra: list[str] = ()) -> int:
    from rps_infer.bench import report as reports

    paths = reports.write_report(report, out / report["created"])
    print(title)
    print("\n".join([*lines, *extra]))
    print(f"report: {paths['md'].parent}/ ({', '.join(p.name for p in paths.values())})")
    return 0


def _read_report(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RpsInferError(f"cannot read report {path}: {exc}") from None
    if not isinstance(data, dict) or "rows" not in data or "machine" not in data:
        raise RpsInferError(f"{path} is not an rps-infer bench report.json (no 'rows'/'machine')")
    return data
