"""The PNG plots of the bench reports (matplotlib, headless). Every point drawn was measured:
categorical axes for the cases, boxes for spread, no lines across batch sizes never timed."""

from __future__ import annotations

from pathlib import Path

from rps_infer.bench.machine import machine_line
from rps_infer.util import atomic_write


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
    if ax.get_legend_handles_labels()[0]:
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


def _cases(report: dict) -> list[str]:
    return [f"{r['backend']}\nb{r['batch']}" for r in report["rows"]]


def _subtitle(report: dict) -> str:
    m = report["machine"]
    return f"{m['cpu_model']}, {m['cores']} cores, {report['threads']} thread(s)"


def plot_latency(report: dict, path: Path) -> None:
    """A box per measured case: p25-p75, the median, whiskers at the fastest call and p99."""
    stats = [{"label": label, "med": r["p50_us"], "q1": r["p25_us"], "q3": r["p75_us"], "whislo": r["min_us"],
              "whishi": r["p99_us"], "fliers": []} for label, r in zip(_cases(report), report["rows"], strict=True)]
    fig, ax = _figure()
    fig.set_size_inches(max(7.0, 0.5 * len(stats) + 2), 4.5)
    ax.bxp(stats, showfliers=False)
    ax.set_yscale("log")
    ax.set_ylabel("latency per call (us); box p25-p75, whiskers min-p99")
    ax.tick_params(axis="x", labelsize=6)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    _finish(fig, ax, f"{report['model']}: latency per call\n{_subtitle(report)}", path)


def plot_throughput(report: dict, path: Path) -> None:
    """A bar per measured case: items per second over the timed calls."""
    _bar_plot(_cases(report), [("items/s", [r["items_per_s"] for r in report["rows"]])], "items per second",
              f"{report['model']}: throughput (measured)\n{_subtitle(report)}", path)


def plot_grpc(report: dict, metric: str, label: str, path: Path) -> None:
    """A line per series x api x batch of ``metric`` against concurrency."""
    keys = dict.fromkeys((r["series"], r["api"], r["batch"]) for r in report["rows"] if r["series"] != "inprocess")
    lines = {f"{s} {a} b{b}": [(r["concurrency"], r[metric]) for r in report["rows"]
                               if (r["series"], r["api"], r["batch"]) == (s, a, b) and r[metric]]
             for s, a, b in keys}
    _line_plot(lines, "concurrent clients", label, f"{report['model']} over gRPC: {label}\n"
               f"{report['machine']['cpu_model']}, {report['machine']['cores']} cores", path)


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

