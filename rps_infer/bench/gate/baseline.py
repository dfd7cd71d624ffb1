"""Write a latency baseline from several fresh runs of the benchmark suite.

    python -m rps_infer.bench.gate.baseline [--repetitions 5] [--runner-class NAME] [-- PYTEST ARGS]

Runs ``pytest benchmarks --benchmark-only`` REPETITIONS times (each in its own
process), takes every case's median per run, and writes the median of those medians
to ``benchmarks/baselines/<runner-class>.json`` together with the spread between
runs ((max - min) / median per case): stored mode's allowances. The file names the
commit it measured (schema :data:`~rps_infer.bench.gate.schemas.BASELINE_SCHEMA`), which is
what the A/B gate times against, so the tree must be clean: a baseline of uncommitted
code would name a revision that did not produce it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rps_infer.bench import machine
from rps_infer.bench.gate.revisions import dirty_files, git
from rps_infer.bench.gate.schemas import BASELINE_SCHEMA, BaselineFile, validated
from rps_infer.util import atomic_write

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def run_suite(out_json: Path, pytest_args: list[str]) -> None:
    """One run of the suite in a fresh process, results to ``out_json``."""
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", f"--benchmark-json={out_json}",
           "-q", "-p", "no:cacheprovider", *pytest_args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"benchmark run failed (exit {proc.returncode}): {' '.join(cmd)}")


def summarise(run_files: list[Path]) -> dict[str, dict]:
    """Per case: group, the median of the runs' medians and of their fastest rounds (seconds),
    each run's median and the spread."""
    medians: dict[str, list[float]] = {}
    fastest: dict[str, list[float]] = {}
    groups: dict[str, str] = {}
    for path in run_files:
        for bench in json.loads(path.read_text(encoding="utf-8"))["benchmarks"]:
            medians.setdefault(bench["name"], []).append(bench["stats"]["median"])
            fastest.setdefault(bench["name"], []).append(bench["stats"]["min"])
            groups[bench["name"]] = bench["group"] or "inprocess"
    cases = {}
    for name, runs in sorted(medians.items()):
        mid = statistics.median(runs)
        lows = fastest[name]
        cases[name] = {"group": groups[name], "median": mid, "min": statistics.median(lows),
                       "runs": runs, "min_runs": lows, "spread": (max(runs) - min(runs)) / mid,
                       "min_spread": (max(lows) - min(lows)) / statistics.median(lows)}
    return cases


def group_spread(cases: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per group: the median and the largest spread of its cases' medians and fastest rounds."""
    out: dict[str, list[tuple[float, float]]] = {}
    for case in cases.values():
        out.setdefault(case["group"], []).append((case["spread"], case.get("min_spread", 0.0)))
    return {g: {"cases": len(s),
                "median_spread": statistics.median(a for a, _ in s), "max_spread": max(a for a, _ in s),
                "median_min_spread": statistics.median(b for _, b in s), "max_min_spread": max(b for _, b in s)}
            for g, s in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make baseline``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--runner-class", default=None, help="default: derived from this machine")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/baselines/<runner-class>.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep the existing baseline's cases this run did not measure (e.g. with -- -k NEW)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    parser.add_argument("--allow-dirty", action="store_true", help=argparse.SUPPRESS)  # the gate's own tests
    args = parser.parse_args(argv)
    dirty = dirty_files(REPO_ROOT)
    if dirty and not args.allow_dirty:
        print(f"make baseline: refusing a dirty tree ({len(dirty)} changed or untracked: {dirty[0].strip()} ...): "
              "a baseline names the commit it measured, and uncommitted code is no commit; commit or stash first",
              file=sys.stderr)
        return 2
    commit = str(git(REPO_ROOT, "rev-parse", "HEAD"))
    runner = args.runner_class or machine.runner_class()
    out = args.out or REPO_ROOT / "benchmarks" / "baselines" / f"{runner}.json"
    with tempfile.TemporaryDirectory(prefix="rps-baseline-") as tmp:
        files = []
        for i in range(args.repetitions):
            print(f"run {i + 1}/{args.repetitions} ...", flush=True)
            files.append(Path(tmp) / f"run{i}.json")
            run_suite(files[-1], [f"--runner-class={runner}", *args.pytest_args])
        cases = summarise(files)
    if args.merge and out.is_file():
        cases = {**json.loads(out.read_text(encoding="utf-8"))["cases"], **cases}
    data = {"schema": BASELINE_SCHEMA, "runner_class": runner, "commit": commit,
            "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "repetitions": args.repetitions, "machine": machine.machine_info(),
            "spread_by_group": group_spread(cases), "cases": cases}
    validated(BaselineFile, data, str(out))  # never write a file the gate would refuse
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))
    print(f"wrote {out} ({len(cases)} cases, commit {commit[:10]})")
    for group, s in data["spread_by_group"].items():
        print(f"  {group:12} {s['cases']:3} cases  spread between runs of the median: median "
              f"{s['median_spread']:.1%}, max {s['max_spread']:.1%}; of the fastest round: median "
              f"{s['median_min_spread']:.1%}, max {s['max_min_spread']:.1%}")
    return 0


if __name__ == "__main__":
    from rps_infer import signals

    signals.exit_process(main())
