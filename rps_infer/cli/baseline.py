"""``rps-infer baseline``: record this machine's latency baseline of the project's declared suite."""

from __future__ import annotations

import argparse
from pathlib import Path

from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("baseline", help="record <baselines>/<runner-class>.json from fresh runs of the suite",
                       description="Run the project's declared suite (its `suite` setting, e.g. tests/test_models.py) "
                       "REPETITIONS times with --benchmark-only, each in a fresh process, in the project root, and "
                       "write the median of the runs' medians per case, their spread and the commit measured to "
                       "<baselines>/<runner-class>.json ([tool.rps_infer] baselines, default benchmarks/baselines). "
                       "Refuses a tree with uncommitted changes: the gate times against the commit a baseline names.")
    p.add_argument("--repetitions", type=common.count, default=5, help="fresh runs of the suite (default 5)")
    p.add_argument("--runner-class", default=None, help="the baseline's name (default: derived from this machine)")
    p.add_argument("--out", type=common.writable_file, default=None,
                   help="write here instead of <baselines>/<runner-class>.json")
    p.add_argument("--merge", action="store_true",
                   help="keep the existing baseline's cases this run did not measure (e.g. with -- -k NEW)")
    p.add_argument("--project", type=common.existing_folder, default=Path("."),
                   help="a folder of the project (default: the current one)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARG", help="more pytest arguments, after --")


def run(args: argparse.Namespace) -> int:
    """Record the baseline and print where it went and how much the runs spread."""
    from rps_infer import progress
    from rps_infer.bench.baseline import record, summary_lines
    from rps_infer.project import Project

    path, data = record(Project.find(args.project), repetitions=args.repetitions, runner_class=args.runner_class,
                        out=args.out, merge=args.merge, pytest_args=args.pytest_args, progress=progress.status)
    print("\n".join(summary_lines(path, data)))
    return 0
