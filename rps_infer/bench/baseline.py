"""Record a latency baseline from several fresh runs of a project's declared suite (``rps-infer baseline``).

Runs ``pytest <suite> --benchmark-only`` (the project's ``suite`` setting, in its root)
REPETITIONS times, each in its own process, takes every case's median per run, and writes
the median of those medians to ``<baselines>/<runner-class>.json`` together with the
spread between runs ((max - min) / median per case): stored mode's allowances. The file
names the commit it measured (schema :data:`~rps_infer.bench.judges.baselines.BASELINE_SCHEMA`),
which is what the A/B gate times against, so the tree must be clean: a baseline of
uncommitted code would name a revision that did not produce it.
"""

from __future__ import annotations

import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from rps_infer.bench import machine
from rps_infer.bench.judges.baselines import BASELINE_SCHEMA, BaselineFile
from rps_infer.bench.runners.revisions import dirty_files, git
from rps_infer.errors import RpsInferError
from rps_infer.project import Project
from rps_infer.schemas import validated
from rps_infer.util import atomic_write


def suite_command(project: Project, *args: str) -> list[str]:
    """``python -m pytest <the project's suite> ARGS``: how baseline and gate run the suite."""
    return [sys.executable, "-m", "pytest", *project.config.suite, *args]


def run_suite(project: Project, out_json: Path, pytest_args: Sequence[str]) -> None:
    """One run of the suite in a fresh process, in the project's root, results to ``out_json``."""
    cmd = suite_command(project, "--benchmark-only", f"--benchmark-json={out_json}", "-q", "-p", "no:cacheprovider",
                        *pytest_args)
    proc = subprocess.run(cmd, cwd=project.root, capture_output=True, text=True)
    if proc.returncode != 0 or not out_json.is_file():
        tail = (proc.stdout[-3000:] + proc.stderr[-2000:]).strip()
        raise RpsInferError(f"the suite run failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


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


def record(project: Project, *, repetitions: int = 5, runner_class: str | None = None, out: Path | None = None,
           merge: bool = False, pytest_args: Sequence[str] = (), allow_dirty: bool = False,
           progress: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Run the suite ``repetitions`` times and write the baseline; returns (its path, its data)."""
    dirty = dirty_files(project.root)
    if dirty and not allow_dirty:
        raise RpsInferError(f"refusing a dirty tree ({len(dirty)} changed or untracked: {dirty[0].strip()} ...): "
                            "a baseline names the commit it measured, and uncommitted code is no commit; "
                            "commit or stash first")
    commit = str(git(project.root, "rev-parse", "HEAD"))
    runner = runner_class or machine.runner_class()
    out = out or project.baselines_dir / f"{runner}.json"
    with tempfile.TemporaryDirectory(prefix="rps-baseline-") as tmp:
        files = []
        for i in range(repetitions):
            if progress:
                progress(f"run {i + 1}/{repetitions} of {' '.join(project.config.suite)}")
            files.append(Path(tmp) / f"run{i}.json")
            run_suite(project, files[-1], [f"--runner-class={runner}", *pytest_args])
        cases = summarise(files)
    if merge and out.is_file():
        cases = {**json.loads(out.read_text(encoding="utf-8"))["cases"], **cases}
    data = {"schema": BASELINE_SCHEMA, "runner_class": runner, "commit": commit,
            "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "repetitions": repetitions, "machine": machine.machine_info(),
            "spread_by_group": group_spread(cases), "cases": cases}
    validated(BaselineFile, data, str(out))  # never write a file the gate would refuse
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8"))
    return out, data


def summary_lines(path: Path, data: dict) -> list[str]:
    """What ``rps-infer baseline`` prints after writing."""
    lines = [f"wrote {path} ({len(data['cases'])} cases, commit {data['commit'][:10]})"]
    for group, s in data["spread_by_group"].items():
        lines.append(f"  {group:12} {s['cases']:3} cases  spread between runs of the median: median "
                     f"{s['median_spread']:.1%}, max {s['max_spread']:.1%}; of the fastest round: median "
                     f"{s['median_min_spread']:.1%}, max {s['max_min_spread']:.1%}")
    return lines
