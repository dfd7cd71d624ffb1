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

from rps_infer.util import atomic_write

COLUMNS = ("backend", "batch", "p50_us", "p90_us", "p99_us", "mean_us", "items_per_s", "speedup_vs_eager",
           "samples", "parity_max_abs", "copy_in_us", "compute_us", "copy_out_us")
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
    for metric, label, path in (("p50_us", "latency p50 (us)", paths["latency_png"]),
                                ("items_per_s", "throughput (items/s)", paths["throughput_png"])):
        if grpc:
            plot_grpc(report, metric, label, path)
        else:
            plot(report, metric, label, path)
    if report.get("fps"):
        paths["fps_png"] = out_dir / "fps.png"
        plot_fps(report, paths["fps_png"])
    if report.get("cost"):
        paths["cost_png"] = out_dir / "cost.png"
        plot_cost(report, paths["cost_png"])
    return paths


def _write_ab(report: dict, out_dir: Path) -> dict[str, Path]:
    """An A/B report (``rps-infer bench --ab``): JSON, CSV, Markdown and the ratios with intervals."""
    from rps_infer.bench.gate.abbench import AB_COLUMNS, markdown

    paths = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "md": out_dir / "report.md",
             "ratios_png": out_dir / "ratios.png"}
    _write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    _write_text(paths["csv"], to_csv(report, AB_COLUMNS))
    _write_text(paths["md"], markdown(report, machine_line(report)))
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


def machine_line(report: dict) -> str:
    """``AMD EPYC, 2 cores, x86_64, no GPU; onnxruntime 1.31.1, torch 2.13.0+cpu, ...``."""
    m = report["machine"]
    gpus = ", ".join(g["name"] for g in m.get("gpus", [])) or "no GPU"
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if k != "rps_infer")
    return f"{m['cpu_model']}, {m['cores']} cores, {m['arch']}, {gpus}; {versions}"


def table_lines(report: dict) -> list[str]:
    """The human table: latency percentiles, items/s and speedup vs PyTorch eager."""
    head = (f"{'backend':22} {'batch':>6} {'p50 us':>10} {'p90 us':>10} {'p99 us':>10} {'items/s':>12} "
            f"{'vs eager':>9}")
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        speed = "-" if r["speedup_vs_eager"] is None else f"{r['speedup_vs_eager']:.2f}x"
        lines.append(f"{r['backend']:22} {r['batch']:>6} {r['p50_us']:>10.1f} {r['p90_us']:>10.1f} "
                     f"{r['p99_us']:>10.1f} {r['items_per_s']:>12,.0f} {speed:>9}")
    lines += [f"skipped {k}: {v}" for k, v in report.get("skipped", {}).items()]
    return lines


def to_markdown(report: dict) -> str:
    """The report as Markdown: machine, settings, the table, and where each backend ran."""
    lines = [f"# rps-infer bench: {report['model']}", "",
             f"- created: {report['created']}", f"- machine: {machine_line(report)}",
             f"- runner class: {report['machine']['runner_class']}",
             f"- threads per framework: {report['threads']}", f"- command: `{report['command']}`", "",
             "| backend | batch | p50 us | p90 us | p99 us | items/s "
             "| speedup vs PyTorch eager (classifiers: vs native) | parity max abs |",
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
    head = (f"{'backend':24} {'FPS b1':>8} {'p50 ms':>8} {'p99 ms':>8} {'best b':>6} {'FPS best':>9} "
            f"{'procs':>5} {'FPS procs':>9} {'scaling':>7} {'vs eager':>8}")
    lines = [head, "-" * len(head)]
    for r in report["fps"]:
        lines.append(f"{r['backend']:24} {_num(r['fps_b1']):>8} {_num(r['p50_ms_b1']):>8} {_num(r['p99_ms_b1']):>8} "
                     f"{_num(r['best_batch'], 'd'):>6} {_num(r['fps_best_batch']):>9} {_num(r['processes'], 'd'):>5} "
                     f"{_num(r['fps_processes']):>9} {_num(r['scaling_efficiency'], '.0%'):>7} "
                     f"{_num(r['speedup_vs_eager_b1'], '.2f', 'x'):>8}")
    cost = report.get("cost")
    if cost:
        lines += ["", f"cost at {cost['cost_per_hour']} USD/hour (input), target {cost['target_fps']:g} FPS 24/7:"]
        for c in cost["rows"]:
            saving = _num(c["monthly_savings_vs_eager_usd"], ",.0f", " USD/month saved")
            even = _num(c["break_even_months"], ".1f", " months to break even")
            lines.append(f"  {c['backend']:24} {c['usd_per_1000_fps_hours']:8.2f} USD per 1,000 FPS-hours, "
                         f"{c['machines_for_target']} machine(s), {c['monthly_usd']:,.0f} USD/month; {saving}; {even}")
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


def plot_fps(report: dict, path: Path) -> None:
    """Grouped bars: FPS at batch 1, at the best batch and with N processes, per backend."""
    rows = report["fps"]
    series = [("batch 1", [r["fps_b1"] or 0 for r in rows]),
              ("best batch", [r["fps_best_batch"] or 0 for r in rows])]
    if any(r["fps_processes"] for r in rows):
        n = next(r["processes"] for r in rows if r["processes"])
        series.append((f"{n} processes", [r["fps_processes"] or 0 for r in rows]))
    _bar_plot([r["backend"] for r in rows], series, "frames per second",
              f"{report['model']}: FPS\n{machine_line(report)[:90]}", path)


def plot_cost(report: dict, path: Path) -> None:
    """Bars: monthly cost of serving the target FPS around the clock, per backend."""
    cost = report["cost"]
    rows = cost["rows"]
    _bar_plot([r["backend"] for r in rows], [("USD per month", [r["monthly_usd"] for r in rows])], "USD per month",
              f"{report['model']}: {cost['target_fps']:g} FPS 24/7 at {cost['cost_per_hour']} USD/machine-hour\n"
              f"FPS measured on {report['machine']['cpu_model']}", path)


def _figure():
    """A headless matplotlib figure of the reports' size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5), dpi=110)


def _finish(fig, ax, title: str, path: Path) -> None:
    """Title, legend, grid; written atomically; the figure closed."""
    import matplotlib.pyplot as plt

    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _bar_plot(labels: list[str], series: list[tuple[str, list[float]]], ylabel: str, title: str, path: Path) -> None:
    fig, ax = _figure()
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series):
        xs = [x + i * width for x in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    _finish(fig, ax, title, path)


def plot(report: dict, metric: str, label: str, path: Path) -> None:
    """A line per backend of ``metric`` against batch size (log-log)."""
    lines = {b: [(r["batch"], r[metric]) for r in report["rows"] if r["backend"] == b]
             for b in dict.fromkeys(r["backend"] for r in report["rows"])}
    _line_plot(lines, "batch size", label, f"{report['model']}: {label}\n{report['machine']['cpu_model']}, "
               f"{report['machine']['cores']} cores, {report['threads']} thread(s)", path)


def plot_grpc(report: dict, metric: str, label: str, path: Path) -> None:
    """A line per series x api x batch of ``metric`` against concurrency."""
    keys = dict.fromkeys((r["series"], r["api"], r["batch"]) for r in report["rows"] if r["series"] != "inprocess")
    lines = {f"{s} {a} b{b}": [(r["concurrency"], r[metric]) for r in report["rows"]
                               if (r["series"], r["api"], r["batch"]) == (s, a, b) and r[metric]]
             for s, a, b in keys}
    _line_plot(lines, "concurrent clients", label, f"{report['model']} over gRPC: {label}\n"
               f"{report['machine']['cpu_model']}, {report['machine']['cores']} cores", path)


def _line_plot(lines: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str, title: str, path: Path) -> None:
    fig, ax = _figure()
    for name, points in lines.items():
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    _finish(fig, ax, title, path)


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


def grpc_table_lines(report: dict) -> list[str]:
    """The gRPC table: latency percentiles, throughput, ratio to the echo floor, server CPU."""
    head = (f"{'series':9} {'api':6} {'rpc':12} {'batch':>5} {'conc':>4} {'p50 us':>8} {'p99 us':>8} "
            f"{'req/s':>8} {'items/s':>10} {'us/item':>8} {'vs echo':>7} {'cpu us/req':>10} errors")
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        ratio = f"{r['ratio_vs_echo']:.2f}x" if r.get("ratio_vs_echo") else "-"
        cpu = f"{r['server_cpu_us_per_req']:.0f}" if r.get("server_cpu_us_per_req") else "-"
        lines.append(f"{r['series']:9} {r['api']:6} {r['rpc']:12} {r['batch']:>5} {r['concurrency']:>4} "
                     f"{r['p50_us']:>8.0f} {r['p99_us']:>8.0f} {r['req_per_s']:>8.0f} {r['items_per_s']:>10.0f} "
                     f"{r['us_per_item']:>8.1f} {ratio:>7} {cpu:>10} {r['errors'] or ''}")
        if r.get("per_replica"):  # several replicas behind --target: who answered how many
            total = sum(r["per_replica"].values())
            lines.append("    answered by " + ", ".join(f"{name}: {n} ({n / total:.0%})"
                                                        for name, n in sorted(r["per_replica"].items())))
    return lines


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
    lines = [f"comparing {new['created']} with {old['created']}"]
    for r in new["rows"]:
        o = before.get(key(r))
        if o and o["p50_us"]:
            lines.append(f"{r['series']:9} {r['api']:6} b{r['batch']:<4} c{r['concurrency']:<3} "
                         f"{o['p50_us']:8.0f} -> {r['p50_us']:8.0f} us  {r['p50_us'] / o['p50_us']:.2f}x")
    return lines


def plot_ratios(rows: list[tuple[str, float, float, float, float]], title: str, path: Path) -> None:
    """A/B ratios head/base with their intervals, one row per case ``(label, ratio, low, high,
    limit)``; the dashed line at each case's limit (1 + threshold)."""
    fig, ax = _figure()
    fig.set_size_inches(7, max(2.5, 0.22 * len(rows) + 1.2))
    ys = range(len(rows))
    for y, (_, ratio, low, high, limit) in zip(ys, rows, strict=True):
        colour = "tab:red" if low > limit else "tab:blue"
        ax.errorbar([ratio], [y], xerr=[[ratio - low], [high - ratio]], fmt="o", color=colour, ms=3, capsize=2)
        if limit < 10:
            ax.plot([limit, limit], [y - 0.4, y + 0.4], color="tab:red", ls="--", lw=0.8)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_yticks(list(ys), [r[0] for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("head / base (interval; dashed: the limit)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
