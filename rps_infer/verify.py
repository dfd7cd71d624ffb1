"""Running two models on the same inputs and judging them with THE comparator.

Parity is judged at several batch sizes (default 1, 3 and 64: others than the
export batch, so a baked-in batch dimension shows up) on inputs that fit the model:
the user's own, else realistic positions for the RPS nets, digits for the
classifiers, seeded uniform values for anything else.

Where the reference knows its MLP weights (the RPS policy and value nets: Go JSON, .pt,
.keras), parity is judged layer by layer too: the candidate's intermediate tensors
(:mod:`rps_infer.backends.taps`) are matched to the reference's layers (hidden
pre-activation, hidden ReLU, logits) and compared with the float64 reference forward
(:mod:`rps_infer.layers`), so a change the saturated softmax hides still fails at the
logits. A float32 candidate is then judged by the float32 rounding allowance alone
(:func:`rps_infer.nets.mlp.float32_allowances`: tight, from the reference only), once per
side that computes in float32; a reduced-precision candidate (fp16, bf16, int8, TF32
presets) by its preset, its layers shown but not judged. A PyTorch reference without
weights is compared block by block, shown but not judged (the verdict stays on the
outputs): the blocks it names in ``parity_blocks()`` (the U-Net), else its leaf modules;
a layer the exporter folded into the next one (a BatchNorm into its convolution) is
marked so and never named as the divergence.

Every candidate must also make the same decisions on every row whose margin exceeds the
noise floor: the same argmax (a policy's top move, a classifier's predicted class), the
same side of 0.5 for a value. Reports use the model's words
(:class:`rps_infer.compare.Vocabulary`): moves and positions for the RPS nets only. On a
failure :mod:`rps_infer.signatures` names a likely cause. Files that carry no weights
are compared with atol/rtol alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import rps_infer.compare as comparator
import rps_infer.defaults as defaults
import rps_infer.layers as layer_parity
import rps_infer.signatures as signatures
from rps_infer import progress
from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.formats import ModelFile
from rps_infer.inputs import InputChoice
from rps_infer.nets import mlp

DEFAULT_BATCH_SIZES = defaults.PARITY_BATCH_SIZES


def model_kind(model: ModelFile) -> str | None:
    """``policy`` or ``value`` for an RPS net (a file carrying MLP weights), ``classifier`` for
    the digits classifiers, else None (any other model): what a report's words follow."""
    if model.weights is not None:
        return model.weights.kind
    return "classifier" if model.family == "classifier" else None


@dataclass
class Decisions:
    """Whether the candidate decides as the reference on every row where the decision is
    clear (the reference's margin exceeds the noise floor)."""

    rule: str  # the argmax's name (see compare.Vocabulary), or "side of 0.5" (values)
    clear: int  # rows whose margin exceeds the noise floor
    disagree: int
    rows: str = "rows"  # what a row is called ("positions" for the RPS nets)

    @property
    def passed(self) -> bool:
        """No clear row decided differently."""
        return self.disagree == 0


@dataclass
class BatchParity:
    """One batch size: the outputs' comparison, the layer table, the decisions."""

    comparison: comparator.ComparisonResult
    layers: list[layer_parity.LayerRow] = field(default_factory=list)
    decisions: Decisions | None = None
    cause: str | None = None
    expected: dict = field(default_factory=dict, repr=False)  # both sides' outputs (--save-outputs)
    got: dict = field(default_factory=dict, repr=False)

    @property
    def outputs(self) -> list[comparator.OutputReport]:
        """Each output's report."""
        return self.comparison.outputs

    @property
    def passed(self) -> bool:
        """Outputs, judged layers and decisions all agree."""
        return (self.comparison.passed and all(r.passed is not False for r in self.layers if r.judged)
                and (self.decisions is None or self.decisions.passed))

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class ParityReport:
    """One :class:`BatchParity` per batch size; truthy when all pass."""

    reference: str
    candidate: str
    results: dict[int, BatchParity] = field(default_factory=dict)
    allowance: str = "the tolerance preset alone"
    matched: dict[str, str] = field(default_factory=dict)  # candidate output -> reference output, by order
    device_choice: str | None = None  # the candidate's device picked by --device auto, and why

    def __bool__(self) -> bool:
        return all(self.results.values())

    @property
    def passed(self) -> bool:
        """Every batch size passed."""
        return bool(self)

    @property
    def shown(self) -> BatchParity | None:
        """The batch whose layer table a report shows: the largest failing one (the most rows to
        recognise a cause in), else the largest."""
        ranked = sorted(self.results.items(), key=lambda item: (not item[1], item[0]))
        return ranked[-1][1] if ranked else None

    @property
    def cause(self) -> str | None:
        """The likely cause found on the shown batch, if any."""
        return None if self.shown is None else self.shown.cause

    def max_abs_error(self) -> float:
        """The largest absolute error over every output and batch size."""
        return max((o.max_abs for r in self.results.values() for o in r.outputs), default=0.0)

    def failures(self) -> list[str]:
        """One line per failure, prefixed with its batch size."""
        lines = []
        for b, r in self.results.items():
            lines += [f"batch {b}: {line}" for line in r.comparison.failures()]
            lines += [f"batch {b}: layer {row.title}: max abs {row.report.max_abs:.3g} beyond its allowance"
                      for row in r.layers if row.judged and row.passed is False]
            if r.decisions is not None and not r.decisions.passed:
                d = r.decisions
                lines.append(f"batch {b}: {d.rule} differs on {d.disagree} of {d.clear} clear {d.rows}")
        return lines

    def to_dict(self) -> dict:
        """JSON-ready dict: per batch the outputs' comparison, the layer table and the decisions."""
        shown = self.shown
        return {"passed": self.passed, "reference": self.reference, "candidate": self.candidate,
                "allowance": self.allowance, "likely_cause": self.cause, "matched_by_position": self.matched,
                "device_choice": self.device_choice,
                "divergence": layer_parity.divergence(shown.layers) if shown and shown.layers else None,
                "batches": {str(b): {**r.comparison.to_dict(), "passed": r.passed,
                                     "layers": [row.to_dict() for row in r.layers],
                                     "decisions": None if r.decisions is None else vars(r.decisions)}
                            for b, r in self.results.items()}}

    def render(self, layers: bool = False) -> str:
        """The report: verdict, per batch the outputs, then (on a failure, or with ``layers``)
        the layer table, where the layers diverge and the likely cause."""
        import rps_infer.tables as tables

        lines = []
        for batch, result in self.results.items():
            if not lines:
                lines.append(result.comparison.header(passed=self.passed))
                lines.append(f"allowance: {self.allowance}")
                if self.matched:
                    pairs = ", ".join(f"{c!r} as {r!r}" for c, r in self.matched.items())
                    lines.append(f"outputs matched by order: the candidate's {pairs}")
            lines.append(f"batch {batch}: {'pass' if result else 'FAIL'}")
            lines.extend(result.comparison.body_lines())
            if result.decisions is not None:
                d = result.decisions
                lines.append(f"  decisions: {d.rule} agrees on {d.clear - d.disagree} of {d.clear} {d.rows} "
                             "whose margin exceeds the noise floor")
        shown = self.shown
        if shown is not None and shown.layers and (layers or not self.passed):
            batch = next(b for b, r in self.results.items() if r is shown)
            lines.append(tables.render(layer_parity.TABLE_COLUMNS, layer_parity.table_rows(shown.layers),
                                       title=f"layers (batch {batch})",
                                       numeric=("max abs", "max rel", "allowance")))
            lines.append(layer_parity.divergence(shown.layers))
        if self.cause:
            lines.append(f"likely cause: {self.cause}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _decisions(kind: str | None, expected: np.ndarray, got: np.ndarray, floor: np.ndarray) -> Decisions | None:
    """The argmax (several columns) or side of 0.5 (a value) on every clear row."""
    if expected.ndim != 2 or expected.shape != got.shape or not expected.size:
        return None
    words = comparator.vocabulary(kind)
    if expected.shape[1] == 1:
        if kind != "value":
            return None
        clear = np.abs(expected[:, 0] - 0.5) > floor[:, 0]
        differ = (expected[:, 0] > 0.5) != (got[:, 0] > 0.5)
        return Decisions("side of 0.5", int(clear.sum()), int((clear & differ).sum()), words.rows)
    order = np.argsort(expected, axis=1)
    rows = np.arange(len(expected))
    top, second = order[:, -1], order[:, -2]
    margin = expected[rows, top] - expected[rows, second]
    clear = margin > floor[rows, top] + floor[rows, second]
    differ = np.argmax(got, axis=1) != top
    return Decisions(words.argmax, int(clear.sum()), int((clear & differ).sum()), words.rows)


def compare_backends(
    reference: Backend,
    candidate: Backend,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | comparator.Tolerance = "fp32",
    weights: mlp.MLPWeights | None = None,
    seed: int = 0,
    generator: str | None = None,
    inputs: InputChoice | None = None,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    layers: bool = True,
    kind: str | None = None,
) -> ParityReport:
    """Run both backends on the same inputs at each batch size and compare them.

    Inputs come from ``inputs`` (the user's file, or a generator with ranges), else from
    ``generator``; a model with a fixed batch is checked at that batch only. Inputs and
    outputs are matched by name, else by order where the counts agree.
    ``weights`` (when known) turn on the layer table and, for a float32 tolerance, the
    tight float32 allowance (once for each side that does not compute in float64).
    ``layers=False`` skips the layer table (faster: the benchmark suite's parity gate).
    ``kind`` (``policy``, ``value``, ``classifier`` or None: see :func:`model_kind`) picks the
    report's words and the decision rule; default: the weights' kind, ``classifier`` on
    the digits generator, else None (argmax, rows).
    """
    tol = comparator.tolerance(tol)
    inputs = inputs or InputChoice(generator)
    kind = weights.kind if weights is not None else kind or ("classifier" if inputs.generator == "digits" else None)
    float32_sides = sum(b.name != "numpy" for b in (reference, candidate))
    tight = weights is not None and tol.float32 and float32_sides > 0
    report = ParityReport(reference_label, candidate_label)
    if tight:
        tol = comparator.Tolerance(f"{tol.name} + float32 allowance", tol.atol if tol.custom else 0.0,
                                   tol.rtol if tol.custom else 0.0, tol.min_psnr_db, float32=True, custom=tol.custom)
        report.allowance = (f"float32 rounding allowance from the reference ({mlp.ERROR_SCALES:g} error scales "
                            f"per layer, {float32_sides} float32 side(s))")
    batches = inputs.batches(reference.input_specs, batch_sizes)
    for i, batch in enumerate(batches):
        progress.step(f"parity at batch {batch}", i, len(batches))
        feeds = inputs.feeds(reference.input_specs, batch, seed + batch)
        expected = reference.infer(feeds)
        got, report.matched = _by_position(expected, candidate.infer(_aligned(candidate, feeds)))
        x = next(iter(feeds.values()))
        allowances = mlp.float32_allowances(weights, x) if tight else None
        allow_out = None if allowances is None else dict.fromkeys(expected, float32_sides * allowances["output"])
        compared = comparator.compare(expected, got, tol, allow_out, reference_label, candidate_label,
                                      agreement=comparator.vocabulary(kind).argmax)
        result = BatchParity(compared, expected=expected, got=got)
        result.decisions = _decide(kind, expected, got, tol, allow_out)
        if weights is not None and layers:
            _judge_layers(result, weights, x, candidate, _aligned(candidate, feeds), tol, allowances, tight)
        elif layers and hasattr(reference, "block_taps"):
            _compare_blocks(result, reference, candidate, feeds)
        report.results[batch] = result
    return report


def _aligned(backend: Backend, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feeds`` under ``backend``'s input names: by name, else by order when the counts agree."""
    names = [s.name for s in backend.input_specs]
    if set(names) == set(feeds) or len(names) != len(feeds):
        return feeds
    return dict(zip(names, feeds.values(), strict=True))


def _by_position(expected: dict, got: dict) -> tuple[dict, dict[str, str]]:
    """``got`` under the reference's output names where the names differ but the counts agree,
    and which candidate output was matched to which reference output."""
    if set(got) == set(expected) or len(got) != len(expected):
        return got, {}
    matched = dict(zip(got, expected, strict=True))
    return {matched[k]: v for k, v in got.items()}, {k: v for k, v in matched.items() if k != v}


def _decide(kind: str | None, expected: dict, got: dict, tol, allow_out) -> Decisions | None:
    """The decision rule on a single output (argmax, side of 0.5), where it applies."""
    if len(expected) != 1 or set(got) != set(expected):
        return None
    (name,) = expected
    ref_out = np.asarray(expected[name], np.float64)
    if np.shape(got[name]) != ref_out.shape:
        return None
    floor = tol.atol + tol.rtol * np.abs(ref_out) + (0.0 if allow_out is None else allow_out[name])
    return _decisions(kind, ref_out, np.asarray(got[name], np.float64), np.broadcast_to(floor, ref_out.shape))


def _compare_blocks(result: BatchParity, reference: Backend, candidate: Backend, feeds) -> None:
    """The layer table of a PyTorch reference, block by block (its ``parity_blocks``, else its
    leaf modules), and on a failure the likely cause at the first block that differs."""
    blocks = reference.block_taps(feeds)
    taps = candidate.taps(_aligned(candidate, feeds)) if blocks else None
    if not blocks or taps is None:
        return
    final = next(iter(result.got.values())) if len(result.got) == 1 else None
    result.layers = layer_parity.compare_blocks(blocks, taps, final)
    first = layer_parity.first_divergent(result.layers)
    if result.passed or first is None or first.source is None:
        return
    by_label = dict(taps)
    counterparts = [by_label.get(row.source) for row in result.layers]  # one row per block, in order
    result.cause = signatures.block_cause(blocks, result.layers.index(first), counterparts)


def _judge_layers(result: BatchParity, weights: mlp.MLPWeights, x: np.ndarray, candidate: Backend, feeds,
                  tol: comparator.Tolerance, allowances, tight: bool) -> None:
    """Fill the layer table (hidden and logits layers, then the outputs' own row) and the cause."""
    chain = mlp.layer_chain(weights, x)
    inner = {k: v for k, v in chain.items() if k != "output"}
    outputs = candidate.infer(feeds)
    final = next(iter(outputs.values())) if len(outputs) == 1 else None
    taps = candidate.taps(feeds)
    result.layers = layer_parity.compare_layers(inner, taps, tol, allowances, mlp.LAYER_TITLES, judged=tight,
                                                final=final)
    if len(result.outputs) == 1:
        (output,) = result.outputs
        result.layers.append(layer_parity.LayerRow("output", mlp.LAYER_TITLES["output"], output.shape,
                                                   "the model's output", output, judged=True))
    if result.passed:
        return
    first = layer_parity.first_divergent(result.layers)
    by_label = dict(taps or ())
    if first is not None and first.layer in ("hidden.pre", "logits") and first.source in by_label:
        limit = allowances[first.layer] if allowances is not None else tol.atol + tol.rtol * np.abs(chain[first.layer])
        result.cause = signatures.layer_cause(weights, x, first.layer, by_label[first.source], limit)
    if result.cause is None and final is not None:
        result.cause = signatures.head_cause(weights.kind, chain, final)


def compare_models(
    reference: ModelFile,
    candidate: ModelFile,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | comparator.Tolerance | None = None,
    seed: int = 0,
    candidate_label: str | None = None,
    inputs: InputChoice | None = None,
    candidate_backend: Backend | None = None,
) -> ParityReport:
    """:func:`compare_backends` on each file's own runtime (the candidate's may be given,
    e.g. on another device), on ``inputs`` (default: the generator the files name) and
    (unless ``tol`` is given) with the tolerance preset the files name."""
    with registry.for_model(reference) as ref, (candidate_backend or registry.for_model(candidate)) as cand:
        report = compare_backends(
            ref, cand, batch_sizes=batch_sizes, tol=tol or candidate.tolerance,
            weights=reference.weights, seed=seed,  # the reference's: a candidate never sets its own allowance
            inputs=inputs or InputChoice(reference.inputs or candidate.inputs), kind=model_kind(reference),
            reference_label=reference.label, candidate_label=candidate_label or candidate.label,
        )
        report.device_choice = getattr(cand, "auto_choice", None)
        return report


def parity_matrix(
    runners: dict[str, Backend],
    weights: mlp.MLPWeights | None = None,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | comparator.Tolerance = "fp32",
) -> dict[tuple[str, str], ParityReport]:
    """Every pair (earlier label as reference) of ``runners`` compared on the same inputs."""
    labels = list(runners)
    return {
        (a, b): compare_backends(runners[a], runners[b], batch_sizes=batch_sizes, tol=tol,
                                 weights=weights, reference_label=a, candidate_label=b)
        for i, a in enumerate(labels)
        for b in labels[i + 1:]
    }


def format_matrix(labels: Sequence[str], pairs: dict[tuple[str, str], ParityReport]) -> str:
    """A lower-triangular table of max abs errors; a failing pair is marked ``FAIL``."""
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [" " * width + "".join(label.rjust(width) for label in labels[:-1])]
    for i, row in enumerate(labels):
        if i == 0:
            continue
        cells = []
        for col in labels[:i]:
            report = pairs[(col, row)]
            mark = "" if report else " FAIL"
            cells.append(f"{report.max_abs_error():.2e}{mark}".rjust(width))
        lines.append(row.ljust(width) + "".join(cells))
    return "\n".join(lines)
