"""Per-layer parity: a reference's layers, their counterparts among a candidate's taps, and
where the two first diverge.

The mapping never reads the names an exporter happened to write. A reference layer's
counterpart is a candidate tap of the same shape, at or after the previous layer's
counterpart in execution order, that lies closest to it (smallest max relative
difference); a layer with no tap of its shape has no counterpart and says so. The
closest tap is the right one to judge: if any tensor of the candidate matches a layer,
the candidate computed that layer, and the error lives further on. Each layer is
judged by THE comparator (:func:`rps_infer.compare.compare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

import rps_infer.compare as comparator
from rps_infer.backends.taps import Tap


@dataclass
class LayerRow:
    """One reference layer and how its counterpart in the candidate compares."""

    layer: str
    title: str
    shape: list[int]
    source: str | None  # the candidate tensor it was matched to; None: no counterpart
    report: comparator.OutputReport | None
    judged: bool  # counts toward the verdict (float32 candidates with a known allowance)

    @property
    def passed(self) -> bool | None:
        """None when there is nothing to compare."""
        return None if self.report is None else self.report.passed

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"layer": self.layer, "title": self.title, "shape": self.shape, "source": self.source,
                "judged": self.judged, "passed": self.passed,
                "comparison": None if self.report is None else asdict(self.report)}


def match(reference: Mapping[str, np.ndarray], taps: Sequence[Tap],
          final: np.ndarray | None = None) -> dict[str, int | None]:
    """Index into ``taps`` of each reference layer's counterpart (None where none has its shape).

    Among the taps of the layer's shape at or after the previous counterpart, the closest
    (``max|t - r| / (max|t| + max|r|)``) if one lies within :data:`CLOSE`, else the first:
    a layer that matches nothing is judged where the chain puts it. ``final`` (the model's
    own output) is a counterpart only where it is close: an export without its head returns
    its logits.
    """
    found: dict[str, int | None] = {}
    start = 0
    for layer, ref in reference.items():
        scored = []
        for i in range(start, len(taps)):
            tap = taps[i][1]
            if tap.shape != ref.shape:
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                size = float(np.max(np.abs(tap)) + np.max(np.abs(ref))) if ref.size else 0.0
                score = float(np.max(np.abs(tap.astype(np.float64) - ref))) / (size or 1.0) if ref.size else 0.0
            if final is not None and tap.shape == final.shape and np.array_equal(tap, final) and not score <= CLOSE:
                continue
            scored.append((score, i))
        close = [item for item in scored if item[0] <= CLOSE]
        best = min(close)[1] if close else (scored[0][1] if scored else None)
        found[layer] = best
        if best is not None:
            start = best
    return found


# A tap this close (relative) to a reference layer is that layer, computed with float32 noise.
CLOSE = 1e-3


def compare_layers(reference: Mapping[str, np.ndarray], taps: Sequence[Tap] | None, tol: comparator.Tolerance,
                   allowances: Mapping[str, np.ndarray] | None, titles: Mapping[str, str], *,
                   judged: bool, final: np.ndarray | None = None) -> list[LayerRow]:
    """One row per reference layer: its counterpart among ``taps`` (see :func:`match`) judged
    with ``tol`` plus its allowance."""
    taps = list(taps or ())
    indices = match(reference, taps, final)
    rows = []
    for layer, ref in reference.items():
        i = indices[layer]
        report = None
        if i is not None:
            allow = None if allowances is None else {layer: allowances[layer]}
            result = comparator.compare({layer: ref}, {layer: taps[i][1]}, tol, allow)
            report = result.outputs[0]
        rows.append(LayerRow(layer, titles.get(layer, layer), list(ref.shape),
                             None if i is None else taps[i][0], report, judged))
    return rows


def divergence(rows: Sequence[LayerRow]) -> str:
    """One sentence: up to where the layers agree and where they first differ."""
    compared = [r for r in rows if r.report is not None]
    first = next((r for r in compared if not r.passed), None)
    missing = [r.title for r in rows if r.report is None]
    lacking = f" ({', '.join(missing)}: no counterpart in the candidate)" if missing else ""
    if first is None:
        return f"every layer agrees{lacking}"
    before = compared[:compared.index(first)]
    if not before:
        return (f"the first layer compared, the {first.title}, already differs "
                f"(max rel {first.report.max_rel:.3g}){lacking}")
    last = before[-1]
    return (f"layers agree up to the {last.title} (max rel {last.report.max_rel:.3g}); "
            f"the {first.title} differ after them (max rel {first.report.max_rel:.3g}){lacking}")


def table_rows(rows: Sequence[LayerRow]) -> list[list[str]]:
    """Rows for :func:`rps_infer.tables.render` under :data:`TABLE_COLUMNS`."""
    out = []
    for r in rows:
        rep = r.report
        if rep is None:
            out.append([r.title, str(r.shape), "-", "-", "-", "no counterpart"])
            continue
        verdict = "ok" if rep.passed else "FAIL" if r.judged else "differs (not judged)"
        out.append([r.title, str(r.shape), f"{rep.max_abs:.3g}", f"{rep.max_rel:.3g}", f"{rep.max_allowance:.3g}",
                    verdict])
    return out


TABLE_COLUMNS = ("layer", "shape", "max abs", "max rel", "allowance", "verdict")
