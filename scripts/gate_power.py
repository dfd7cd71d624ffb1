"""Detection power and false alarms of the A/B latency gate on this machine (a benchmark, not a test).

    python scripts/gate_power.py [--on user|zoo] [--runs 10] [--slowdowns 0.05,0.10,0.25] [--out gate-power.json]

``--on user`` (default): a user's own repository outside this checkout (``tests/user_repo.py``:
a PyTorch CNN of theirs, its checkpoint and its ONNX export, declared with ``rps-infer
init``; commit A), gated as that user would (``pytest tests/test_models.py --benchmark-only
--gate --gate-base A``) with the installed rps_infer on both sides. The planted slowdown
is the user's own code: their ``forward`` busy-waits that fraction of each call's own time,
so ``model-pyt-cpu-b1`` is slowed and ``model-onnxrt-cpu-b1`` (the ONNX file, unchanged) is a
control inside every run.

``--on zoo``: this repository's own zoo in a throwaway copy of the working tree
(``tests/planted.py``), on the proof selection (policy onnxrt b1 and b64, gRPC Predict b1),
the slowdown planted in the ONNX Runtime backend's hot path and the Predict handler.

RUNS gated runs against A itself (A/A), then RUNS for each planted slowdown (a commit on top
of A). Prints per slowdown and group how many runs flagged every case of the group, the
ratios and lower bounds seen, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rps_infer.bench import machine
from rps_infer.tables import render
from tests.planted import plant, throwaway_repo
from tests.user_repo import HINTS, git, make_user_repo, slower

ZOO_SELECTION = ["rps_infer/benchmarks/test_models.py", "rps_infer/benchmarks/test_grpc.py", "--backends",
                 "onnxrt-cpu", "-k",
                 "policy-onnxrt-cpu-b1 or policy-onnxrt-cpu-b64 or service-neural-Predict-policy-b1"]
ZOO_GROUPS = {"inprocess": ("test_latency[policy-onnxrt-cpu-b1]", "test_latency[policy-onnxrt-cpu-b64]"),
              "grpc": ("test_grpc[service-neural-Predict-policy-b1]",)}
USER_GROUPS = {"slowed (pyt-cpu)": ("test_latency[model-pyt-cpu-b1]",),
               "control (onnxrt-cpu)": ("test_latency[model-onnxrt-cpu-b1]",)}


def environment() -> dict[str, str]:
    """This environment's python and rps-infer first on PATH, nothing redirecting imports."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GITHUB_BASE_REF")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def gated_run(repo: Path, selection: list[str], base: str, out: Path) -> dict:
    """One gated run of the selection; its --gate-json verdicts."""
    proc = subprocess.run([sys.executable, "-m", "pytest", *selection, "--benchmark-only", "--gate",
                           f"--gate-base={base}", f"--gate-json={out}", "-q", "-p", "no:cacheprovider"],
                          cwd=repo, env=environment(), capture_output=True, text=True)
    if not out.is_file():
        raise SystemExit(f"gated run wrote no verdicts (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    data = json.loads(out.read_text())
    data["exit"] = proc.returncode
    return data


def summarise(label: str, runs: list[dict], groups: dict[str, tuple[str, ...]]) -> list[tuple]:
    """Per group: runs in which every case of the group was a REGRESSION, ratio and lower-bound ranges."""
    rows = []
    for group, cases in groups.items():
        flagged = sum(all(r["verdict"] == "REGRESSION" for r in run["rows"] if r["case"] in cases) for run in runs)
        judged = [r for run in runs for r in run["rows"] if r["case"] in cases and r["interval"]]
        ratios = [r["interval"]["ratio"] for r in judged]
        lows = [r["interval"]["low"] for r in judged]
        rows.append((label, group, f"{flagged}/{len(runs)}", f"{min(ratios):.3f}-{max(ratios):.3f}",
                     f"{statistics.median(ratios):.3f}", f"{min(lows):.3f}-{max(lows):.3f}"))
    return rows


def user_series(tmp: Path, runs: int, fractions: list[float]) -> dict[str, list[dict]]:
    """The A/A and planted series in a user's repository."""
    repo = tmp / "user"
    make_user_repo(repo, environment())
    subprocess.run(["rps-infer", "init", "model.onnx", "--reference", "checkpoint.pth", *HINTS], cwd=repo,
                   env=environment(), check=True, capture_output=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "declare the model")
    commit_a = git(repo, "rev-parse", "HEAD")
    selection = ["tests/test_models.py"]
    results = {"A/A": [gated_run(repo, selection, commit_a, tmp / f"aa{i}.json") for i in range(runs)]}
    for fraction in fractions:
        git(repo, "checkout", "-q", "-B", f"slow{fraction}", commit_a)
        (repo / "mynet.py").write_text(slower(fraction))
        git(repo, "commit", "-qam", f"slow {fraction}")
        results[f"+{fraction:.0%}"] = [gated_run(repo, selection, commit_a, tmp / f"s{fraction}-{i}.json")
                                       for i in range(runs)]
    return results


def zoo_series(tmp: Path, runs: int, fractions: list[float]) -> dict[str, list[dict]]:
    """The A/A and planted series on this repository's own zoo."""
    repo = tmp / "repo"
    repo.mkdir()
    commit_a = throwaway_repo(repo)
    results = {"A/A": [gated_run(repo, ZOO_SELECTION, commit_a, tmp / f"aa{i}.json") for i in range(runs)]}
    predict = statistics.median(r["base"] for run in results["A/A"] for r in run["rows"]
                                if r["case"] in ZOO_GROUPS["grpc"])
    for fraction in fractions:
        subprocess.run(["git", "checkout", "-q", "-B", f"slow{fraction}", commit_a], cwd=repo, check=True)
        plant(repo, backend_fraction=fraction, predict_seconds=fraction * predict, message=f"slow {fraction}")
        results[f"+{fraction:.0%}"] = [gated_run(repo, ZOO_SELECTION, commit_a, tmp / f"s{fraction}-{i}.json")
                                       for i in range(runs)]
    return results


def main() -> int:
    """Run the A/A and planted-slowdown series and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on", choices=("user", "zoo"), default="user")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--slowdowns", default="0.05,0.10,0.25")
    parser.add_argument("--out", type=Path, default=Path("gate-power.json"))
    args = parser.parse_args()
    started = time.time()
    fractions = [float(f) for f in args.slowdowns.split(",")]
    with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
        series = user_series if args.on == "user" else zoo_series
        results = series(Path(tmp), args.runs, fractions)
    groups = USER_GROUPS if args.on == "user" else ZOO_GROUPS
    rows = [row for label, runs in results.items() for row in summarise(label, runs, groups)]
    minutes = (time.time() - started) / 60
    print(f"{machine.cpu_model()} ({machine.cpu_signature()}), {machine.cpu_count()} cores; on {args.on}; "
          f"{args.runs} runs per row, {minutes:.1f} min in all")
    print(render(("planted", "group", "all cases flagged", "ratios", "median ratio", "lower bounds"), rows))
    args.out.write_text(json.dumps({"machine": machine.machine_info(), "on": args.on, "minutes": minutes,
                                    "rows": rows, "runs": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
