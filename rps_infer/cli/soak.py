"""``rps-infer soak``: mixed traffic against a running server, watched over time."""

from __future__ import annotations

import argparse
import json

import rps_infer.defaults as defaults
from rps_infer import progress
from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("soak", help="mixed traffic against a running server, watched over time",
                       description="Closed-loop clients (threads in a few processes) cycle through Predict, "
                       "BatchPredict and ModelInfer against a running rps-infer serve (the zoo's policy and value) "
                       "and report per interval requests, errors, req/s, p50/p99 and the server's resident "
                       "memory. Exits 1 on any error or stuck call (unanswered after 10 s), or when the memory "
                       "growth after warm-up exceeds --max-rss-growth.")
    p.add_argument("--target", required=True, type=common.target, metavar="HOST:PORT[,HOST:PORT...]",
                   help="HOST:PORT of the server, or replicas: a comma list or dns:///NAME:PORT (round robin; a "
                   "call a replica dropped is retried)")
    p.add_argument("--duration", type=common.seconds, default=60.0, help="measured seconds after warm-up (default 60)")
    p.add_argument("--warmup", type=common.non_negative_seconds, default=defaults.SOAK_WARMUP_S,
                   help=f"seconds not counted (default {defaults.SOAK_WARMUP_S:g})")
    p.add_argument("--concurrency", type=common.count, default=32, help="client threads in all (default 32)")
    p.add_argument("--processes", type=common.count, help="client processes (default: one per core)")
    p.add_argument("--interval", type=common.seconds, default=defaults.SOAK_INTERVAL_S,
                   help=f"seconds per reported window (default {defaults.SOAK_INTERVAL_S:g})")
    p.add_argument("--server-pid", type=common.count, action="append", default=[],
                   help="server process whose memory (with its workers) is sampled (repeatable)")
    p.add_argument("--max-rss-growth", type=common.tolerance_value, metavar="FRACTION",
                   help="fail when server memory grows by more than this after warm-up (e.g. 0.10)")
    p.add_argument("--out", type=common.writable_folder, help="also write soak.json into this folder")


def run(args: argparse.Namespace) -> int:
    """Soak, print the windows and the totals; 1 on errors, stuck calls or memory growth."""
    from rps_infer.bench.loadgen.soak import run_soak, summary_lines
    from rps_infer.client import check_pids, check_target
    from rps_infer.util import atomic_write

    check_pids(args.server_pid or [])
    check_target(args.target)
    result = run_soak(args.target, duration_s=args.duration, concurrency=args.concurrency,
                      processes=args.processes, server_pids=args.server_pid or None, warmup_s=args.warmup,
                      interval_s=args.interval, progress=progress.status)
    print("\n".join(summary_lines(result)))
    if args.out:
        path = args.out / "soak.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8"))
        print(f"report: {path}")
    failed = sum(result.errors.values()) > 0 or result.stuck > 0
    if args.max_rss_growth is not None and result.rss_growth is not None:
        failed |= result.rss_growth > args.max_rss_growth
    return 1 if failed else 0
