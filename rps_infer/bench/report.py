"""Benchmark reports: JSON, CSV, Markdown and PNG plots in ``reports/<timestamp>/``.

A report is a dict: ``created``, ``machine`` (rps_infer.bench.machine.machine_info),
``command``, and the sweep's ``model``, ``threads``, ``rows`` and ``skipped``; for image
models also ``processes`` (multi-process runs), ``fps`` and, given prices, ``cost``
(:mod:`rps_infer.bench.cost`). Every figure in it was measured on the machine the
report names; prices are printed as the user's inputs.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from rps_infer import tables
from rps_infer.bench.machine import machine_line
from rps_infer.util import atomic_write

COLUMNS = ("backend", "batch", "p50_us", "p90_us", "p99_us", "mean_us", "min_us", "p25_us", "p75_us", "stddev_us",
           "items_per_s", "speedup_vs_eager", "samples", "parity_max_abs", "copy_in_us", "compute_us", "copy_out_us")
GRPC_COLUMNS = ("series", "api", "rpc", "model", "batch", "concurrency", "requests", "p50_us", "p90_us", "p99_us",
                "req_per_s", "items_per_s", "us_per_item", "ratio_vs_echo", "server_cpu_us_per_req", "errors")


def timestamp() -> str:
    """UTC time as used in report folder names: 20261122-013045."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.csv, report.md, latency.png and throughput.png; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if report.get("kind") == "ab":
        return _write_ab(report, out_dir)
    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "md": out_dir / "report.md",
             "latency_png": out_dir / "latency.png", "throughput_png": out_dir / "throughput.png"}
    _write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    grpc = report.get("kind") == "grpc"
    _write_text(paths["csv"], to_csv(report, GRPC_COLUMNS if grpc else COLUMNS))
    _write_text(paths["md"], grpc_markdown(report) if grpc else to_markdown(report))
    from rps_infer.bench import plots

    if grpc:
        for metric, label, key in (("p50_us", "latency p50 (us)", "latency_png"),
                                   ("items_per_s", "throughput (items/s)", "throughput_png")):
            plots.plot_grpc(report, metric, label, paths[key])
    else:
        plots.plot_latency(report, paths["latency_png"])
        plots.plot_throughput(report, paths["throughput_png"])
    if report.get("fps"):
        paths["fps_png"] = out_dir / "fps.png"
        plots.plot_fps(report, paths["fps_png"])
    if report.get("cost"):
        paths["cost_png"] = out_dir / "cost.png"
        plots.plot_cost(report, paths["cost_png"])
    return paths


def _write_ab(report: dict, out_dir: Path) -> dict[str, Path]:
    """An A/B report (``rps-infer bench --ab``): JSON, CSV, Markdown and the ratios with intervals."""
    from rps_infer.bench.abbench import AB_COLUMNS, markdown

    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "md": out_dir / "report.md",
             "ratios_png": out_dir / "ratios.png"}
    _write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    _write_text(paths["csv"], to_csv(report, AB_COLUMNS))
    _write_text(paths["md"], markdown(report, machine_line(report)))
    from rps_infer.bench.plots import plot_ratios

    points = [(f"{r['backend']} b{r['batch']}", r["ratio"], r["low"], r["high"], 1 + report["limit"])
              for r in report["rows"] if "ratio" in r]
    plot_ratios(points, f"{report['model']}: head {report['head'][:10]} / base {report['base'][:10]}\n"
                f"{machine_line(report)[:90]}", paths["ratios_png"])
    return paths


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def to_csv(report: dict, columns: tuple[str, ...] = COLUMNS) -> str:
    """One line per row of the report."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(report["rows"])
    return buf.getvalue()


def table_lines(report: dict) -> list[str]:
    """The human table: latency percentiles and spread, measured items/s, speedup vs PyTorch eager."""
    rows = [(r["backend"], r["batch"], f"{r['p50_us']:,.1f}", f"{r['p99_us']:,.1f}", _num(r.get("min_us"), ",.1f"),
             _num(_iqr(r), ",.1f"), f"{r['items_per_s']:,.0f}", _num(r["speedup_vs_eager"], ".2f", "x"))
            for r in report["rows"]]
    lines = tables.render(("backend", "batch", "p50 us", "p99 us", "min us", "IQR us", "items/s", "vs eager"), rows,
                          numeric=("batch", "p50 us", "p99 us", "min us", "IQR us", "items/s", "vs eager"),
                          terminal=True).splitlines()
    return lines + [f"skipped {k}: {v}" for k, v in report.get("skipped", {}).items()]


def _iqr(row: dict) -> float | None:
    return row["p75_us"] - row["p25_us"] if "p75_us" in row else None


def provenance_lines(report: dict) -> list[str]:
    """Markdown bullets: the code's commit (dirty or not) and each model file's sha256."""
    source = report.get("source", {})
    dirty = {True: " (with uncommitted changes)", False: ""}.get(source.get("dirty"), ", dirty: unknown")
    lines = [f"- code: commit {source.get('commit', 'unknown')}{dirty}"]
    return lines + [f"- model file `{path}`: sha256 {digest}" for path, digest in report.get("models", {}).items()]


def to_markdown(report: dict) -> str:
    """The report as Markdown: machine, settings, the table, and where each backend ran."""
    lines = [f"# rps-infer bench: {report['model']}", "",
             f"- created: {report['created']}", f"- machine: {machine_line(report)}",
             f"- runner class: {report['machine']['runner_class']}",
             f"- threads per framework: {report['threads']}", f"- command: `{report['command']}`",
             *provenance_lines(report), "",
             "Latency per call after warm-up, one sample per call; IQR = p75 - p25; items/s = items over the "
             "wall time of the timed calls.", "",
             "| backend | batch | p50 us | p90 us | p99 us | min us | IQR us | stddev us | calls | items/s "
             "| speedup vs PyTorch eager (classifiers: vs native) | parity max abs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["rows"]:
        speed = "-" if r["speedup_vs_eager"] is None else f"{r['speedup_vs_eager']:.2f}x"
        lines.append(f"| {r['backend']} | {r['batch']} | {r['p50_us']:.1f} | {r['p90_us']:.1f} | "
                     f"{r['p99_us']:.1f} | {_num(r.get('min_us'))} | {_num(_iqr(r))} | {_num(r.get('stddev_us'))} | "
                     f"{r['samples']} | {r['items_per_s']:,.0f} | {speed} | {r['parity_max_abs']:.2g} |")
    lines += ["", "## Runtimes", ""]
    seen = {}
    for r in report["rows"]:
        seen.setdefault(r["backend"], r["runtime"])
    for backend, runtime in seen.items():
        details = ", ".join(f"{k}={v}" for k, v in runtime.items() if v is not None)
        lines.append(f"- {backend}: {details}")
    for k, v in report.get("skipped", {}).items():
        lines.append(f"- skipped {k}: {v}")
    for r in report["rows"]:
        if r.get("compute_us") is not None:
            lines.append(f"- {r['backend']} b{r['batch']} with IO binding: copy in {r['copy_in_us']:.1f} us, "
                         f"compute {r['compute_us']:.1f} us, copy out {r['copy_out_us']:.1f} us (medians)")
    if report.get("fps"):
        lines += ["", *fps_markdown_lines(report)]
    return "\n".join(lines) + "\n"


def _num(value, fmt: str = ".1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def fps_table_lines(report: dict) -> list[str]:
    """The console table of an image model: FPS at batch 1, best batch and N processes; cost."""
    columns = ("backend", "FPS b1", "p50 ms", "p99 ms", "best b", "FPS best", "procs", "FPS procs", "scaling",
               "vs eager")
    rows = [(r["backend"], _num(r["fps_b1"]), _num(r["p50_ms_b1"]), _num(r["p99_ms_b1"]), _num(r["best_batch"], "d"),
             _num(r["fps_best_batch"]), _num(r["processes"], "d"), _num(r["fps_processes"]),
             _num(r["scaling_efficiency"], ".0%"), _num(r["speedup_vs_eager_b1"], ".2f", "x")) for r in report["fps"]]
    lines = tables.render(columns, rows, numeric=columns[1:], terminal=True).splitlines()
    cost = report.get("cost")
    if cost:
        columns = ("backend", "USD per 1,000 FPS-hours", "machines", "USD/month", "saved USD/month",
                   "break-even months")
        rows = [(c["backend"], f"{c['usd_per_1000_fps_hours']:.2f}", c["machines_for_target"],
                 f"{c['monthly_usd']:,.0f}", _num(c["monthly_savings_vs_eager_usd"], ",.0f"),
                 _num(c["break_even_months"], ".1f"))
                for c in cost["rows"]]
        lines += ["", *tables.render(columns, rows, numeric=columns[1:], terminal=True,
                                     title=f"cost at {cost['cost_per_hour']} USD/hour (input), target "
                                     f"{cost['target_fps']:g} FPS 24/7").splitlines()]
    return lines


def fps_markdown_lines(report: dict) -> list[str]:
    """The FPS and cost sections of an image model's Markdown report."""
    lines = ["## FPS (frames per second, measured here)", "",
             "FPS = frames / median call time; batch 1 is one stream frame by frame. "
             f"Processes: N independent processes (one session each, {report['threads']} thread(s) each) "
             "at batch 1, started together; scaling = aggregate FPS / (N x single-process FPS).", "",
             "| backend | FPS b1 | p50 ms b1 | p99 ms b1 | best batch | FPS best batch | processes | FPS processes "
             "| scaling | speedup vs eager b1 | speedup vs eager best |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["fps"]:
        lines.append(f"| {r['backend']} | {_num(r['fps_b1'])} | {_num(r['p50_ms_b1'])} | {_num(r['p99_ms_b1'])} | "
                     f"{_num(r['best_batch'], 'd')} | {_num(r['fps_best_batch'])} | {_num(r['processes'], 'd')} | "
                     f"{_num(r['fps_processes'])} | {_num(r['scaling_efficiency'], '.0%')} | "
                     f"{_num(r['speedup_vs_eager_b1'], '.2f', 'x')} | {_num(r['speedup_vs_eager_best'], '.2f', 'x')} |")
    for p in report.get("processes", []):
        lines.append(f"- {p['backend']}, {p['processes']} process(es), batch {p['batch']}: {p['fps']:.1f} FPS "
                     f"(per process {', '.join(f'{f:.1f}' for f in p['per_process_fps'])}), call p50 "
                     f"{p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms over {p['calls']} calls in {p['duration_s']:g} s")
    cost = report.get("cost")
    if cost:
        lines += ["", "## Cost", "",
                  f"Inputs (not measured): {cost['cost_per_hour']} USD per machine-hour, target {cost['target_fps']:g} "
                  f"FPS around the clock ({cost['hours_per_month']:g} h/month)"
                  + (f", engineering effort {cost['effort_hours']:g} h at {cost['hourly_rate']} USD/h"
                     if cost.get("effort_hours") is not None else "") + ". Each backend at the highest FPS measured "
                  "for it on this machine; machines = ceil(target / FPS).", "",
                  "| backend | FPS | configuration | USD per 1,000 FPS-hours | machines | USD/month | "
                  "saved vs eager USD/month | break-even months |",
                  "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
        for c in cost["rows"]:
            lines.append(f"| {c['backend']} | {c['fps']:.1f} | {c['configuration']} | "
                         f"{c['usd_per_1000_fps_hours']:.2f} | "
                         f"{c['machines_for_target']} | {c['monthly_usd']:,.0f} | "
                         f"{_num(c['monthly_savings_vs_eager_usd'], ',.0f')} | {_num(c['break_even_months'], '.1f')} |")
    return lines


def compare_lines(old: dict, new: dict) -> list[str]:
    """p50 and items/s ratios (new / old) for every backend x batch both reports have."""
    before = {(r["backend"], r["batch"]): r for r in old["rows"]}
    rows = []
    for r in new["rows"]:
        o = before.get((r["backend"], r["batch"]))
        if o is not None:
            ratio = r["p50_us"] / o["p50_us"]
            rows.append((r["backend"], r["batch"], f"{o['p50_us']:.1f}", f"{r['p50_us']:.1f}",
                         f"{ratio:.2f}x ({abs(ratio - 1):.0%} {'slower' if ratio > 1 else 'faster'})"))
    return [f"comparing {new['created']} ({new['machine']['runner_class']}) with "
            f"{old['created']} ({old['machine']['runner_class']})",
            *tables.render(("backend", "batch", "old p50 us", "new p50 us", "ratio"), rows,
                           numeric=("batch", "old p50 us", "new p50 us")).splitlines()]


def grpc_table_lines(report: dict) -> list[str]:
    """The gRPC table: latency percentiles, throughput, ratio to the echo floor, server CPU."""
    columns = ("series", "api", "rpc", "batch", "conc", "p50 us", "p99 us", "req/s", "items/s", "us/item", "vs echo",
               "cpu us/req", "errors")
    rows, answered = [], []
    for r in report["rows"]:
        rows.append((r["series"], r["api"], r["rpc"], r["batch"], r["concurrency"], f"{r['p50_us']:.0f}",
                     f"{r['p99_us']:.0f}", f"{r['req_per_s']:.0f}", f"{r['items_per_s']:.0f}",
                     f"{r['us_per_item']:.1f}", _num(r.get("ratio_vs_echo") or None, ".2f", "x"),
                     _num(r.get("server_cpu_us_per_req") or None, ".0f"), r["errors"] or ""))
        if r.get("per_replica"):  # several replicas behind --target: who answered how many
            total = sum(r["per_replica"].values())
            split = ", ".join(f"{name}: {n} ({n / total:.0%})" for name, n in sorted(r["per_replica"].items()))
            answered.append(f"{r['series']} {r['api']} b{r['batch']} c{r['concurrency']}: answered by {split}")
    return tables.render(columns, rows, numeric=columns[3:12], terminal=True).splitlines() + answered


def grpc_markdown(report: dict) -> str:
    """The gRPC report as Markdown."""
    lines = [f"# rps-infer bench over gRPC: {report['model']}", "",
             f"- created: {report['created']}", f"- machine: {machine_line(report)}",
             f"- target: {report['target']}; duration {report['duration_s']} s per case after "
             f"{report['warmup_s']} s warm-up; closed loop, clients in separate processes",
             f"- command: `{report['command']}`", "",
             "| series | api | rpc | batch | clients | p50 us | p90 us | p99 us | req/s | items/s | us/item "
             "| vs echo | server CPU us/req | errors |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in report["rows"]:
        ratio = f"{r['ratio_vs_echo']:.2f}x" if r.get("ratio_vs_echo") else "-"
        cpu = f"{r['server_cpu_us_per_req']:.0f}" if r.get("server_cpu_us_per_req") else "-"
        lines.append(f"| {r['series']} | {r['api']} | {r['rpc']} | {r['batch']} | {r['concurrency']} | "
                     f"{r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | {r['req_per_s']:.0f} | "
                     f"{r['items_per_s']:.0f} | {r['us_per_item']:.1f} | {ratio} | {cpu} | {r['errors'] or ''} |")
    return "\n".join(lines) + "\n"


def grpc_compare_lines(old: dict, new: dict) -> list[str]:
    """p50 ratios (new / old) for every series x api x batch x concurrency both reports have."""
    def key(r: dict) -> tuple:
        return (r["series"], r["api"], r["batch"], r["concurrency"])

    before = {key(r): r for r in old["rows"]}
    rows = [(*key(r), f"{before[key(r)]['p50_us']:.0f}", f"{r['p50_us']:.0f}",
             f"{r['p50_us'] / before[key(r)]['p50_us']:.2f}x")
            for r in new["rows"] if before.get(key(r)) and before[key(r)]["p50_us"]]
    columns = ("series", "api", "batch", "conc", "old p50 us", "new p50 us", "ratio")
    return [f"comparing {new['created']} with {old['created']}",
            *tables.render(columns, rows, numeric=columns[2:]).splitlines()]


