"""Benchmark reports: JSON, CSV, Markdown and PNG plots in ``reports/<timestamp>/``.

A report is a dict: ``created``, ``machine`` (rps_infer.bench.machine.machine_info),
``command``, and the sweep's ``model``, ``threads``, ``rows`` and ``skipped``. Every
figure in it was measured on the machine the report names.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from rps_infer.util import atomic_write

COLUMNS = ("backend", "batch", "p50_us", "p90_us", "p99_us", "mean_us", "items_per_s", "speedup_vs_eager",
           "samples", "parity_max_abs")


def timestamp() -> str:
    """UTC time as used in report folder names: 20261122-013045."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.csv, report.md, latency.png and throughput.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "md": out_dir / "report.md",
             "latency_png": out_dir / "latency.png", "throughput_png": out_dir / "throughput.png"}
    _write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    _write_text(paths["csv"], to_csv(report))
    _write_text(paths["md"], to_markdown(report))
    plot(report, "p50_us", "latency p50 (us)", paths["latency_png"])
    plot(report, "items_per_s", "throughput (items/s)", paths["throughput_png"])
    return paths


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def to_csv(report: dict) -> str:
    """One line per backend x batch."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    return buf.getvalue()


def machine_line(report: dict) -> str:
    """``AMD EPYC, 2 cores, x86_64, no GPU; onnxruntime 1.31.1, torch 2.13.0+cpu, ...``."""
    m = report["machine"]
    gpus = ", ".join(g["name"] for g in m.get("gpus", [])) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if k != "rps_infer")
    return f"{m['cpu_model']}, {m['cores']} cores, {m['arch']}, {gpus}; {versions}"


def table_lines(report: dict) -> list[str]:
    """The human table: latency percentiles, items/s and speedup vs PyTorch eager."""
    head = (f"{'backend':16} {'batch':>6} {'p50 us':>10} {'p90 us':>10} {'p99 us':>10} {'items/s':>12} "
            f"{'vs eager':>9}")
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        speed = "-" if r["speedup_vs_eager"] is None else f"{r['speedup_vs_eager']:.2f}x"
        lines.append(f"{r['backend']:16} {r['batch']:>6} {r['p50_us']:>10.1f} {r['p90_us']:>10.1f} "
                     f"{r['p99_us']:>10.1f} {r['items_per_s']:>12,.0f} {speed:>9}")
    lines += [f"skipped {k}: {v}" for k, v in report.get("skipped", {}).items()]
    return lines


def to_markdown(report: dict) -> str:
    """The report as Markdown: machine, settings, the table, and where each backend ran."""
    lines = [f"# rps-infer bench: {report['model']}", "",
             f"- created: {report['created']}", f"- machine: {machine_line(report)}",
             f"- runner class: {report['machine']['runner_class']}",
             f"- threads per framework: {report['threads']}", f"- command: `{report['command']}`", "",
             "| backend | batch | p50 us | p90 us | p99 us | items/s | speedup vs PyTorch eager | parity max abs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["rows"]:
        speed = "-" if r["speedup_vs_eager"] is None else f"{r['speedup_vs_eager']:.2f}x"
        lines.append(f"| {r['backend']} | {r['batch']} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | "
                     f"{r['p99_us']:.1f} | {r['items_per_s']:,.0f} | {speed} | {r['parity_max_abs']:.2g} |")
    lines += ["", "## Runtimes", ""]
    seen = {}
    for r in report["rows"]:
        seen.setdefault(r["backend"], r["runtime"])
    for backend, runtime in seen.items():
        details = ", ".join(f"{k}={v}" for k, v in runtime.items() if v is not None)
        lines.append(f"- {backend}: {details}")
    for k, v in report.get("skipped", {}).items():
        lines.append(f"- skipped {k}: {v}")
    return "\n".join(lines) + "\n"


def plot(report: dict, metric: str, label: str, path: Path) -> None:
    """A line per backend of ``metric`` against batch size (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for backend in dict.fromkeys(r["backend"] for r in report["rows"]):
        rows = [r for r in report["rows"] if r["backend"] == backend]
        ax.plot([r["batch"] for r in rows], [r[metric] for r in rows], marker="o", label=backend)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(label)
    ax.set_title(f"{report['model']}: {label}\n{report['machine']['cpu_model']}, "
                 f"{report['machine']['cores']} cores, {report['threads']} thread(s)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def compare_lines(old: dict, new: dict) -> list[str]:
    """p50 and items/s ratios (new / old) for every backend x batch both reports have."""
    before = {(r["backend"], r["batch"]): r for r in old["rows"]}
    lines = [f"comparing {new['created']} ({new['machine']['runner_class']}) with "
             f"{old['created']} ({old['machine']['runner_class']})",
             f"{'backend':16} {'batch':>6} {'old p50':>10} {'new p50':>10} {'ratio':>7}"]
    for r in new["rows"]:
        o = before.get((r["backend"], r["batch"]))
        if o is None:
            continue
        ratio = r["p50_us"] / o["p50_us"]
        word = "slower" if ratio > 1 else "faster"
        lines.append(f"{r['backend']:16} {r['batch']:>6} {o['p50_us']:>10.1f} {r['p50_us']:>10.1f} "
                     f"{ratio:>6.2f}x ({abs(ratio - 1):.0%} {word})")
    return lines
