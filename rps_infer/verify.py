"""Running two models on the same inputs and judging them with THE comparator.

Parity is judged at several batch sizes (default 1, 3 and 64: others than the
export batch, so a baked-in batch dimension shows up) on realistic RPS positions.

How float32 is judged against float64: each side that computes in float32 may be
off by the MLP's rounding-error bound (:func:`rps_infer.nets.mlp.float32_output_allowance`),
so the comparator allows ``atol + rtol*|ref|`` plus that bound once per float32
side. The bound needs the weights, which Go JSON, .pt and .keras files carry; two
ONNX files are compared with atol/rtol alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rps_infer import compare as comparator
from rps_infer.backends.base import Backend, TensorSpec
from rps_infer.game import FEATURE_COUNT, realistic_positions
from rps_infer.models import ModelFile
from rps_infer.nets.mlp import MLPWeights, float32_output_allowance

DEFAULT_BATCH_SIZES = (1, 3, 64)
INPUT_GENERATORS = ("rps-positions", "uniform", "digits")


def make_feeds(specs: Sequence[TensorSpec], batch: int, seed: int = 0,
               generator: str | None = None) -> dict[str, np.ndarray]:
    """Inputs for ``specs`` at ``batch``: realistic RPS positions for a [N, 81] float32
    input (``rps-positions``), rows of the digits test split (``digits``, from row
    ``seed``), else seeded uniform values in [0, 1) (``uniform``)."""
    feeds = {}
    for i, spec in enumerate(specs):
        shape = (batch, *(d if d is not None else 1 for d in spec.shape[1:]))
        chosen = generator or ("rps-positions" if shape[1:] == (FEATURE_COUNT,) else "uniform")
        if chosen == "rps-positions":
            feeds[spec.name] = realistic_positions(batch, seed + i).astype(spec.dtype)
        elif chosen == "digits":
            from rps_infer.nets.digits import digit_rows

            feeds[spec.name] = digit_rows(batch, offset=seed + i).astype(spec.dtype)
        elif chosen == "uniform":
            feeds[spec.name] = np.random.default_rng(seed + i).random(shape).astype(spec.dtype)
        else:
            raise ValueError(f"unknown input generator {chosen!r}; known: {INPUT_GENERATORS}")
    return feeds


@dataclass
class ParityReport:
    """One :class:`~rps_infer.compare.ComparisonResult` per batch size; truthy when all pass."""

    reference: str
    candidate: str
    results: dict[int, comparator.ComparisonResult] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return all(self.results.values())

    @property
    def passed(self) -> bool:
        """Every batch size passed."""
        return bool(self)

    def max_abs_error(self) -> float:
        """The largest absolute error over every output and batch size."""
        return max((o.max_abs for r in self.results.values() for o in r.outputs), default=0.0)

    def failures(self) -> list[str]:
        """One line per failure, prefixed with its batch size."""
        return [f"batch {b}: {line}" for b, r in self.results.items() for line in r.failures()]

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"passed": self.passed, "reference": self.reference, "candidate": self.candidate,
                "batches": {str(b): r.to_dict() for b, r in self.results.items()}}

    def __str__(self) -> str:
        lines = []
        for batch, result in self.results.items():
            if not lines:
                lines.append(result.header(passed=self.passed))
            lines.append(f"batch {batch}: {'pass' if result else 'FAIL'}")
            lines.extend(result.body_lines())
        return "\n".join(lines)


def compare_backends(
    reference: Backend,
    candidate: Backend,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | comparator.Tolerance = "fp32",
    weights: MLPWeights | None = None,
    seed: int = 0,
    generator: str | None = None,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
) -> ParityReport:
    """Run both backends on the same inputs at each batch size and compare the outputs.

    ``weights`` (when known) turn on the float32 rounding allowance, once for each
    side that does not compute in float64.
    """
    report = ParityReport(reference_label, candidate_label)
    float32_sides = sum(b.name != "numpy" for b in (reference, candidate))
    for batch in batch_sizes:
        feeds = make_feeds(reference.input_specs, batch, seed + batch, generator)
        expected = reference.infer(feeds)
        got = candidate.infer(feeds)
        allowance = None
        if weights is not None and float32_sides:
            bound = float32_output_allowance(weights, feeds[reference.input_specs[0].name])
            allowance = dict.fromkeys(expected, float32_sides * bound)
        report.results[batch] = comparator.compare(expected, got, tol, allowance,
                                                   reference_label, candidate_label)
    return report


def compare_models(
    reference: ModelFile,
    candidate: ModelFile,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    tol: str | comparator.Tolerance | None = None,
    seed: int = 0,
    candidate_label: str | None = None,
) -> ParityReport:
    """:func:`compare_backends` on each file's own runtime, on the inputs and (unless
    ``tol`` is given) with the tolerance preset the files name."""
    with reference.backend() as ref, candidate.backend() as cand:
        return compare_backends(
            ref, cand, batch_sizes=batch_sizes, tol=tol or candidate.tolerance,
            weights=reference.weights or candidate.weights, seed=seed,
            generator=reference.inputs or candidate.inputs,
            reference_label=reference.label, candidate_label=candidate_label or candidate.label,
        )


def parity_matrix(
    runners: dict[str, Backend],
    weights: MLPWeights | None = None,
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
