"""Detection power and false alarms of the A/B latency gate on this machine (a benchmark, not a test).

    python scripts/gate_power.py [--runs 10] [--slowdowns 0.05,0.10,0.25] [--out gate-power.json]

In a throwaway repository (the working tree as commit A, see ``benchmarks/planted.py``)
it runs the gated suite on the proof selection (policy onnxrt b1 and b64, gRPC Predict
b1), exactly as CI would (``pytest ... --benchmark-only --gate --gate-base A``): RUNS
times against A itself (A/A), then RUNS times for each planted slowdown (a commit on
top of A slowing the ONNX Runtime hot path by that fraction of each call and the
Predict handler by that fraction of the A/A Predict median). Prints per slowdown and
group how many runs flagged every case of the group, the ratios and lower bounds seen,
and the wall time.
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

from benchmarks.planted import plant, throwaway_repo
from rps_infer.bench import machine
from rps_infer.tables import render

SELECTION = ["benchmarks/test_latency.py", "benchmarks/test_grpc.py", "--backends", "onnxrt-cpu", "-k",
             "policy-onnxrt-cpu-b1 or policy-onnxrt-cpu-b64 or service-neural-Predict-policy-b1"]
GROUPS = {"inprocess": ("test_latency[policy-onnxrt-cpu-b1]", "test_latency[policy-onnxrt-cpu-b64]"),
          "grpc": ("test_grpc[service-neural-Predict-policy-b1]",)}


def gated_run(repo: Path, base: str, out: Path) -> dict:
    """One gated run of the selection; its --gate-json verdicts."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "pytest", *SELECTION, "--benchmark-only", "--gate",
                           f"--gate-base={base}", f"--gate-json={out}", "-q", "-p", "no:cacheprovider"],
                          cwd=repo, env=env, capture_output=True, text=True)
    if not out.is_file():
        raise SystemExit(f"gated run wrote no verdicts (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    data = json.loads(out.read_text())
    data["exit"] = proc.returncode
    return data


def summarise(label: str, runs: list[dict]) -> list[tuple]:
    """Per group: runs in which every case of the group was a REGRESSION, ratio and lower-bound ranges."""
    rows = []
    for group, cases in GROUPS.items():
        flagged = sum(all(r["verdict"] == "REGRESSION" for r in run["rows"] if r["case"] in cases) for run in runs)
        judged = [r for run in runs for r in run["rows"] if r["case"] in cases and r["interval"]]
        ratios = [r["interval"]["ratio"] for r in judged]
        lows = [r["interval"]["low"] for r in judged]
        rows.append((label, group, f"{flagged}/{len(runs)}", f"{min(ratios):.3f}-{max(ratios):.3f}",
                     f"{statistics.median(ratios):.3f}", f"{min(lows):.3f}-{max(lows):.3f}"))
    return rows


def main() -> int:
    """Run the A/A and planted-slowdown series and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--slowdowns", default="0.05,0.10,0.25")
    parser.add_argument("--out", type=Path, default=Path("gate-power.json"))
    args = parser.parse_args()
    started = time.time()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        commit_a = throwaway_repo(repo)
        results["A/A"] = [gated_run(repo, commit_a, Path(tmp) / f"aa{i}.json") for i in range(args.runs)]
        predict = statistics.median(r["base"] for run in results["A/A"] for r in run["rows"]
                                    if r["case"] in GROUPS["grpc"])
        for fraction in (float(f) for f in args.slowdowns.split(",")):
            subprocess.run(["git", "checkout", "-q", commit_a], cwd=repo, check=True)
            subprocess.run(["git", "checkout", "-q", "-B", f"slow{fraction}"], cwd=repo, check=True)
            plant(repo, backend_fraction=fraction, predict_seconds=fraction * predict, message=f"slow {fraction}")
            results[f"+{fraction:.0%}"] = [gated_run(repo, commit_a, Path(tmp) / f"s{fraction}-{i}.json")
                                           for i in range(args.runs)]
    rows = [row for label, runs in results.items() for row in summarise(label, runs)]
    minutes = (time.time() - started) / 60
    print(f"{machine.cpu_model()} ({machine.cpu_signature()}), {machine.cpu_count()} cores; "
          f"{args.runs} runs per row, {minutes:.1f} min in all; Predict A/A median {predict * 1e6:.0f} us")
    print(render(("planted", "group", "all cases flagged", "ratios", "median ratio", "lower bounds"), rows))
    args.out.write_text(json.dumps({"machine": machine.machine_info(), "minutes": minutes, "rows": rows,
                                    "runs": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
