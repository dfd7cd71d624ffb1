"""``rps-infer bench --ab BASE [HEAD]``: the latency gate's A/B for humans, on any two revisions.

Every backend x batch size of one zoo model is timed in the same run against BASE's
``rps_infer`` and HEAD's (default: the working tree), interleaved in worker processes
exactly as the gate does (:mod:`rps_infer.bench.runners.ab`), and reported as ratios with
intervals and the gate's verdicts, in the usual report files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rps_infer.bench.judges.verdicts import judge_ab
from rps_infer.bench.runners.ab import ABSession
from rps_infer.bench.runners.revisions import Tree, materialise, resolve, share_models, top_level
from rps_infer.errors import RpsInferError
from rps_infer.project import GateConfig, Project
from rps_infer.tables import render, us

AB_COLUMNS = ("backend", "batch", "base_us", "head_us", "ratio", "low", "high", "verdict", "status", "note")


def ab_sweep(project: Project, base_rev: str, head_rev: str | None, model: str, backends: Sequence[str],
             batch_sizes: Sequence[int], *, config: GateConfig | None = None, threads: int = 1,
             progress: Callable[[str], None] | None = None) -> dict:
    """Time ``model`` on every backend x batch size, base against head; the report's fields."""
    root, config = project.root, config or project.config.gate
    top = top_level(root)
    subdir = root.relative_to(top)
    base_commit = resolve(root, base_rev)
    if head_rev is None:
        head = Tree(top, None, "head", subdir)
    else:  # a revision: start from the working tree's models where the recipe is the same
        head = materialise(root, resolve(root, head_rev), project.trees_dir, "head", subdir)
        share_models(top, head.path)
    rows = []
    with ABSession(materialise(root, base_commit, project.trees_dir, "base", subdir), head, blocks=config.blocks,
                   block_seconds=config.block_seconds, case_seconds=config.case_seconds,
                   interleave=config.interleave, workers=config.workers, threads=threads,
                   tensorflow=any(b.startswith("tf") for b in backends), confidence=config.confidence,
                   pin=config.pin) as session:
        session.start(progress=progress, models=[model])
        total = len(backends) * len(batch_sizes)
        for i, (spec, batch) in enumerate(((s, b) for s in backends for b in batch_sizes), 1):
            if progress:
                progress(f"[{i}/{total}] {spec} batch {batch}")
            case = {"kind": "latency", "model": model, "backend": spec, "batch": batch}
            result = session.measure(f"{model}-{spec}-b{batch}", case)
            row = {"backend": spec, "batch": batch, "status": result.status, "note": result.reason}
            if result.status == "compared":
                judged = judge_ab(result.case, "inprocess", result.interval, result.median("base"),
                                  result.median("head"), config.threshold("inprocess"))
                row.update(base_us=judged.base * 1e6, head_us=judged.head * 1e6, ratio=result.interval.ratio,
                           low=result.interval.low, high=result.interval.high, verdict=judged.verdict.value)
            rows.append(row)
    if not any(r["status"] == "compared" for r in rows):
        reasons = "; ".join(f"{r['backend']} b{r['batch']}: {r['note']}" for r in rows[:3])
        raise RpsInferError(f"nothing was compared ({reasons})")
    return {"kind": "ab", "model": model, "threads": threads, "base": base_commit,
            "head": head.commit or "working tree", "limit": config.threshold("inprocess"), "rows": rows}


def table_lines(report: dict) -> list[str]:
    """The human table: base, head, ratio and interval per backend x batch."""
    def seconds(row: dict, key: str) -> float | None:
        return row[key] / 1e6 if key in row else None

    rows = [(r["backend"], r["batch"], us(seconds(r, "base_us")), us(seconds(r, "head_us")),
             f"{r['ratio']:.3f}" if "ratio" in r else "-",
             f"[{r['low']:.3f}, {r['high']:.3f}]" if "low" in r else "-", r.get("verdict") or r["status"],
             r["note"]) for r in report["rows"]]
    title = f"{report['model']}: head {report['head'][:10]} / base {report['base'][:10]}"
    return [render(("backend", "batch", "base", "head", "ratio", "interval", "verdict", "note"), rows,
                   title=title, numeric=("batch", "base", "head", "ratio"))]


def markdown(report: dict, machine_line: str) -> str:
    """The report as Markdown."""
    lines = [f"# rps-infer bench --ab: {report['model']}", "", f"- created: {report['created']}",
             f"- machine: {machine_line}", f"- base: `{report['base']}`", f"- head: `{report['head']}`",
             f"- command: `{report['command']}`",
             f"- a case is a regression when its interval lies above x{1 + report['limit']:.2f}", "",
             "| backend | batch | base us | head us | head/base | interval | verdict |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in report["rows"]:
        if "ratio" in r:
            lines.append(f"| {r['backend']} | {r['batch']} | {r['base_us']:.1f} | {r['head_us']:.1f} | "
                         f"{r['ratio']:.3f} | [{r['low']:.3f}, {r['high']:.3f}] | {r['verdict']} |")
        else:
            lines.append(f"| {r['backend']} | {r['batch']} | - | - | - | - | {r['status']}: {r['note']} |")
    return "\n".join(lines) + "\n"
