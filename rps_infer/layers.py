"""Per-layer parity: a reference's layers, their counterparts among a candidate's taps, and
where the two first diverge.

The mapping never reads the names an exporter happened to write. A reference layer's
counterpart is a candidate tap of the same shape, at or after the previous layer's
counterpart in execution order, that lies closest to it (smallest max relative
difference; the details in :func:`match`); a layer with no tap of its shape has no
counterpart and says so. The closest tap is the right one to judge: if any tensor of
the candidate matches a layer, the candidate computed that layer, and the error lives
further on. Each layer is judged by THE comparator (:func:`rps_infer.compare.compare`).

Two things an export does on purpose are not divergences. A candidate may run parallel
branches in another order (a close tap before the previous counterpart still matches).
And exporters fold a layer into the next one (a BatchNorm into the convolution before
it): the folded layer's own output exists nowhere in the candidate, so its row differs
while the next row, which consumes it, agrees; such a row is marked ``fused`` and
:func:`divergence` looks past it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

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
    fused: bool = False  # differs, but the next layer, which consumes it, agrees: folded by the exporter
    index: int | None = field(default=None, repr=False)  # the counterpart's place among the candidate's taps

    @property
    def passed(self) -> bool | None:
        """None when there is nothing to compare."""
        return None if self.report is None else self.report.passed

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"layer": self.layer, "title": self.title, "shape": self.shape, "source": self.source,
                "judged": self.judged, "passed": self.passed, "fused": self.fused,
                "comparison": None if self.report is None else asdict(self.report)}


def match(reference: Mapping[str, np.ndarray], taps: Sequence[Tap],
          final: np.ndarray | None = None) -> dict[str, int | None]:
    """Index into ``taps`` of each reference layer's counterpart (None where none has its shape).

    Among the taps of the layer's shape at or after the last close counterpart, the
    closest (``max|t - r| / (max|t| + max|r|)``) if one lies within :data:`CLOSE`; else a
    close tap before it (the candidate ran this branch earlier); else the closest within
    :data:`NEAR` after it, else the first after it: a layer that matches nothing is judged
    where the chain puts it, and (not being close) does not move the order on, so the
    layers after it stay in place. ``final`` (the model's own output) is a counterpart
    only where it is close: an export without its head returns its logits.
    """
    found: dict[str, int | None] = {}
    anchor = 0
    for layer, ref in reference.items():
        found[layer], close = _pick(ref, taps, final, anchor)
        if close:
            anchor = found[layer]
    return found


def _pick(ref: np.ndarray, taps: Sequence[Tap], final: np.ndarray | None, start: int) -> tuple[int | None, bool]:
    """(the counterpart of ``ref`` given the last close one's index ``start``, whether it is close)."""
    after = _scores(ref, taps, final, range(start, len(taps)))
    close = [item for item in after if item[0] <= CLOSE]
    if not close:  # taps before ``start`` are scored only then: on a big network they are many
        close = [item for item in _scores(ref, taps, final, range(start)) if item[0] <= CLOSE]
    if close:
        return min(close)[1], True
    near = [item for item in after if item[0] <= NEAR]
    return (min(near)[1] if near else after[0][1] if after else None), False


def _scores(ref: np.ndarray, taps: Sequence[Tap], final: np.ndarray | None,
            indices: range) -> list[tuple[float, int]]:
    """(relative distance to ``ref``, index) of each tap of ``ref``'s shape among ``indices``."""
    scored = []
    for i in indices:
        tap = taps[i][1]
        if tap.shape != ref.shape:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            size = float(np.max(np.abs(tap)) + np.max(np.abs(ref))) if ref.size else 0.0
            score = float(np.max(np.abs(tap.astype(np.float64) - ref))) / (size or 1.0) if ref.size else 0.0
        if final is not None and tap.shape == final.shape and np.array_equal(tap, final) and not score <= CLOSE:
            continue
        scored.append((score, i))
    return scored


# A tap this close (relative) to a reference layer is that layer, computed with float32 noise.
CLOSE = 1e-3
# A tap this near is that layer computed with a small bug (weights times 1.01): past a
# divergence it tells a layer's own tensor from its neighbours'. Farther than this, the
# distances say nothing (a wrong pre-activation may lie nearer its ReLU than itself).
NEAR = 0.1


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
                             None if i is None else taps[i][0], report, judged, index=i))
    return rows


# Blocks of a network judged by its outputs (the U-Net: PSNR) are shown, not judged: each
# is compared at a relative 1e-4 of its own scale (intermediate tensors are not in [0, 1]).
BLOCK_TOLERANCE = comparator.Tolerance("per block", atol=0.0, rtol=1e-3)
BLOCK_SCALE = 1e-4


def compare_blocks(blocks: Sequence[tuple[str, object, np.ndarray, np.ndarray]], taps: Sequence[Tap],
                   final: np.ndarray | None = None) -> list[LayerRow]:
    """One row per block call ``(title, module, input, output)`` of a PyTorch reference (see
    :func:`rps_infer.backends.taps.torch_block_taps`), shown but not judged, with the
    layers the exporter fused marked (see :func:`mark_fused`)."""
    chain = {title: out.astype(np.float64) for title, _, _, out in blocks}
    allow = {title: BLOCK_SCALE * float(np.max(np.abs(out), initial=0.0)) for title, out in chain.items()}
    rows = compare_layers(chain, taps, BLOCK_TOLERANCE, allow, {}, judged=False, final=final)
    # Whether each block's output is the next one's input: only then can an exporter have fused them.
    mark_fused(rows, [np.array_equal(a[3], b[2]) for a, b in itertools.pairwise(blocks)], taps)
    return rows


def mark_fused(rows: Sequence[LayerRow], consumes: Sequence[bool], taps: Sequence[Tap]) -> None:
    """Mark each differing row the exporter folded into the next one (a convolution into its
    BatchNorm): the next row consumes its output (``consumes[i]``: row ``i + 1`` takes row
    ``i``'s output as its input) and agrees (or was itself folded into one that does), and
    the candidate has no tensor of this row's shape between the last agreeing layer's
    counterpart and the next row's: nothing it could have computed this layer in. Not a
    branch's last layer followed by the next branch's first (no consumption), nor a layer
    whose error a saturating next layer (a sigmoid) shrinks within its allowance (the
    layer has a tensor of its own)."""
    agreed: list[list[int]] = []  # per row: the counterparts of the agreeing rows before it
    seen: list[int] = []
    for row in rows:
        agreed.append(list(seen))
        if row.passed and row.index is not None:
            seen.append(row.index)
    for i in range(len(rows) - 2, -1, -1):  # backwards: a chain of folded layers ends at an agreeing one
        row, after = rows[i], rows[i + 1]
        if not (consumes[i] and row.passed is False and (after.passed or after.fused) and after.index is not None):
            continue
        since = max((k for k in agreed[i] if k < after.index), default=-1)
        row.fused = not any(taps[k][1].shape == tuple(row.shape) for k in range(since + 1, after.index))


def first_divergent(rows: Sequence[LayerRow]) -> LayerRow | None:
    """The first compared row that differs and was not folded into the next one."""
    return next((r for r in rows if r.passed is False and not r.fused), None)


def divergence(rows: Sequence[LayerRow]) -> str:
    """One sentence: up to where the layers agree and where they first differ."""
    compared = [r for r in rows if r.report is not None]
    first = first_divergent(compared)
    missing = [r.title for r in rows if r.report is None]
    notes = [f"{', '.join(missing)}: no counterpart in the candidate"] if missing else []
    fused = [r.title for r in rows if r.fused]
    if fused:
        notes.append(f"{', '.join(fused)}: fused by the exporter into the next layer, which agrees")
    lacking = f" ({'; '.join(notes)})" if notes else ""
    if first is None:
        return f"every layer agrees{lacking}"
    before = [r for r in compared[:compared.index(first)] if not r.fused]
    if not before:
        return (f"the first layer compared, the {first.title}, already differs "
                f"(max rel {first.report.max_rel:.3g}){lacking}")
    last = before[-1]
    return (f"layers agree up to the {last.title} (max rel {last.report.max_rel:.3g}); "
            f"the first to differ is the {first.title} (max rel {first.report.max_rel:.3g}){lacking}")


def table_rows(rows: Sequence[LayerRow]) -> list[list[str]]:
    """Rows for :func:`rps_infer.tables.render` under :data:`TABLE_COLUMNS`."""
    out = []
    for r in rows:
        rep = r.report
        if rep is None:
            out.append([r.title, str(r.shape), "-", "-", "-", "no counterpart"])
            continue
        verdict = ("ok" if rep.passed else "fused by the exporter into the next layer" if r.fused
                   else "FAIL" if r.judged else "differs (not judged)")
        out.append([r.title, str(r.shape), f"{rep.max_abs:.3g}", f"{rep.max_rel:.3g}", f"{rep.max_allowance:.3g}",
                    verdict])
    return out


TABLE_COLUMNS = ("layer", "shape", "max abs", "max rel", "allowance", "verdict")
