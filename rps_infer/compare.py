"""THE comparator: the one place in the project that decides whether two sets of
outputs agree. Nothing else calls ``allclose``.

Pass rule, elementwise: ``|a - b| <= atol + rtol * |b| + allowance`` where ``b`` is the
reference, ``a`` the candidate (integer outputs on both sides, such as class labels,
must be identical), and ``allowance`` an optional per-element extra that
a reference may supply (the float32 rounding allowance of the MLPs, see
:func:`rps_infer.nets.mlp.float32_allowances`). Structure is checked first
(output names, then shapes) and every problem is collected before a verdict.

A :class:`ComparisonResult` is truthy when it passes, serialises to JSON and
prints a readable report including the smallest atol / rtol that would have passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """A named tolerance preset: elementwise ``|a - b| <= atol + rtol * |b| (+ allowance)``.

    No separate argmax rule: when every element passes, the argmax can only differ on
    rows whose two largest values are within their tolerances of each other. The argmax
    agreement rate is reported for every multi-column output.
    """

    name: str
    atol: float
    rtol: float
    min_psnr_db: float | None = None  # image outputs: also require this PSNR (peak 1.0)
    # A float32 computation: judged by the reference's float32 allowance alone where the
    # reference knows its weights (see rps_infer.verify); atol / rtol apply where it does not.
    float32: bool = False
    custom: bool = False  # atol / rtol given by the user: they then apply on top of the allowance

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (value >= 0.0):  # also catches NaN, which compares false
                raise ValueError(f"tolerance {self.name}: {name} must be non-negative and not NaN, got {value}")


PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance("fp32", atol=1e-5, rtol=1e-4, float32=True),
    "tf32": Tolerance("tf32", atol=1e-3, rtol=1e-3),
    "fp16": Tolerance("fp16", atol=1e-3, rtol=1e-2),
    "bf16": Tolerance("bf16", atol=1e-2, rtol=5e-2),
    "int8": Tolerance("int8", atol=2e-2, rtol=5e-2),
    # Image outputs in [0, 1] (the lipsync U-Net). Reduced precision is judged by PSNR alone:
    # elementwise bounds say little about an image whose every pixel moved a little.
    "image-fp32": Tolerance("image-fp32", atol=1e-4, rtol=1e-3, min_psnr_db=60.0),
    "image-fp16": Tolerance("image-fp16", atol=float("inf"), rtol=0.0, min_psnr_db=40.0),
    "image-int8": Tolerance("image-int8", atol=float("inf"), rtol=0.0, min_psnr_db=35.0),
    # Classifier probabilities, float32 ONNX vs the native model (float64 for scikit-learn's
    # forests). Measured on the digits test split: <= 5e-7 for every model (see benchmarks/README.md).
    "proba-linear": Tolerance("proba-linear", atol=2e-6, rtol=1e-5),
    "proba-tree": Tolerance("proba-tree", atol=2e-6, rtol=1e-5),
}


def tolerance(spec: str | Tolerance, atol: float | None = None, rtol: float | None = None) -> Tolerance:
    """A preset by name (or a given Tolerance), with atol / rtol overridden when given."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise KeyError(f"unknown tolerance preset {spec!r}; known: {', '.join(PRESETS)}")
        spec = PRESETS[spec]
    if atol is None and rtol is None:
        return spec
    return Tolerance(
        f"{spec.name}(custom)",
        spec.atol if atol is None else atol,
        spec.rtol if rtol is None else rtol,
        spec.min_psnr_db,
        float32=spec.float32,
        custom=True,
    )



def tolerance_for_precision(base: str, precision: str | None) -> str:
    """The preset a ``precision`` variant of a model judged with preset ``base`` must meet."""
    if precision in ("fp32", "", None):
        return base
    if base.startswith("image-"):
        return "image-int8" if precision == "int8" else "image-fp16"
    return precision


@dataclass(frozen=True)
class Vocabulary:
    """The words a report uses for a model's outputs: the RPS game's only for its nets."""

    argmax: str  # a row's argmax: "top move" (policy), "predicted class" (classifier), "argmax"
    rows: str  # what a row of inputs is: "positions" (of the RPS game) or "rows"


VOCABULARIES = {"policy": Vocabulary("top move", "positions"), "value": Vocabulary("argmax", "positions"),
                "classifier": Vocabulary("predicted class", "rows")}
GENERIC = Vocabulary("argmax", "rows")


def vocabulary(kind: str | None) -> Vocabulary:
    """The words for a model of ``kind`` (``policy``, ``value``, ``classifier``); :data:`GENERIC`
    for any other (see :func:`rps_infer.verify.model_kind`)."""
    return VOCABULARIES.get(kind or "", GENERIC)


@dataclass
class OutputReport:
    """Error statistics of one output; ``passed`` applies the tolerance rule."""

    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    mean_abs: float
    p99_abs: float
    required_atol: float  # smallest atol that passes with this rtol and allowance
    required_rtol: float  # smallest rtol that passes with this atol and allowance
    max_allowance: float
    failing: int  # elements outside the tolerance
    worst_index: list[int]
    # Fraction of rows whose argmax agrees (the key's name predates models other than the RPS policy).
    top_move_agreement: float | None = None
    psnr_db: float | None = None  # image metrics (4-D outputs): peak signal 1.0
    snr_db: float | None = None
    cosine: float | None = None
    passed: bool = True


@dataclass
class ComparisonResult:
    """Every output's report plus structural problems; truthy when everything passed."""

    tolerance: Tolerance
    outputs: list[OutputReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reference: str = "reference"
    candidate: str = "candidate"
    agreement: str = "argmax"  # what a row's argmax is called in the report: "top move" for the RPS policy

    @property
    def passed(self) -> bool:
        """No structural problem and every output within tolerance."""
        return not self.problems and all(o.passed for o in self.outputs)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        """A JSON-ready dict of the whole result."""
        return {
            "passed": self.passed,
            "reference": self.reference,
            "candidate": self.candidate,
            "agreement": self.agreement,
            "tolerance": asdict(self.tolerance),
            "problems": list(self.problems),
            "outputs": [asdict(o) for o in self.outputs],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def failures(self) -> list[str]:
        """One line per structural problem and per failing output."""
        lines = list(self.problems)
        for o in self.outputs:
            if not o.passed:
                psnr = "" if o.psnr_db is None else f", PSNR {o.psnr_db:.1f} dB"
                lines.append(
                    f"output {o.name!r}: max abs error {o.max_abs:.3g} at {o.worst_index} "
                    f"(max rel {o.max_rel:.3g}{psnr}): {o.failing} element(s) outside tolerance"
                )
        return lines

    def header(self, passed: bool | None = None) -> str:
        """The verdict line (``passed`` overrides the verdict shown, e.g. for several batches)."""
        t = self.tolerance
        passed = self.passed if passed is None else passed
        extra = ", plus the reference allowance" if any(o.max_allowance for o in self.outputs) else ""
        return (f"{'PASS' if passed else 'FAIL'}: {self.candidate} vs {self.reference} "
                f"(tolerance {t.name}: atol {t.atol:g}, rtol {t.rtol:g}{extra})")

    def body_lines(self) -> list[str]:
        """Structural problems, then two lines per output: errors and the minimum tolerance."""
        t = self.tolerance
        lines = [f"  problem: {p}" for p in self.problems]
        for o in self.outputs:
            top = "" if o.top_move_agreement is None else f", {self.agreement} agrees {o.top_move_agreement:.1%}"
            if o.psnr_db is not None:
                top += f", PSNR {o.psnr_db:.1f} dB, SNR {o.snr_db:.1f} dB, cosine {o.cosine:.8f}"
            lines.append(
                f"  {'ok  ' if o.passed else 'FAIL'} {o.name!r} {o.shape}: max abs {o.max_abs:.3g}, "
                f"max rel {o.max_rel:.3g}, mean abs {o.mean_abs:.3g}, p99 abs {o.p99_abs:.3g}{top}"
            )
            lines.append(
                f"       minimum required tolerance: atol {o.required_atol:.3g} (at rtol {t.rtol:g}) "
                f"or rtol {o.required_rtol:.3g} (at atol {t.atol:g}); "
                f"largest allowance {o.max_allowance:.3g}; {o.failing} failing"
            )
        return lines

    def __str__(self) -> str:
        return "\n".join([self.header(), *self.body_lines()])


def compare(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tol: str | Tolerance = "fp32",
    allowance: Mapping[str, np.ndarray] | None = None,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    *,
    agreement: str = "argmax",
) -> ComparisonResult:
    """Compare ``candidate`` outputs with ``reference`` outputs: names, shapes, then values.
    ``agreement`` names a row's argmax in the report (``top move``, ``predicted class``)."""
    result = ComparisonResult(tolerance(tol), reference=reference_label, candidate=candidate_label,
                              agreement=agreement)
    missing = [n for n in reference if n not in candidate]
    extra = [n for n in candidate if n not in reference]
    if missing:
        result.problems.append(f"{candidate_label} lacks output(s) {missing}; it has {list(candidate)}")
    if extra:
        result.problems.append(f"{candidate_label} has unexpected output(s) {extra}")
    for name in reference:
        if name not in candidate:
            continue
        ref = np.asarray(reference[name])
        cand = np.asarray(candidate[name])
        if ref.shape != cand.shape:
            result.problems.append(
                f"output {name!r}: shape {list(cand.shape)} in {candidate_label}, "
                f"{list(ref.shape)} in {reference_label}"
            )
            continue
        extra_tol = None if allowance is None else allowance.get(name)
        result.outputs.append(_compare_output(name, ref, cand, result.tolerance, extra_tol))
    return result


def _compare_output(
    name: str, ref: np.ndarray, cand: np.ndarray, tol: Tolerance, allowance: np.ndarray | None
) -> OutputReport:
    b = ref.astype(np.float64)
    a = cand.astype(np.float64)
    extra = np.zeros_like(b) if allowance is None else np.broadcast_to(np.asarray(allowance, np.float64), b.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        # NaN where either side is NaN, except where both are the same non-finite value.
        same_nonfinite = ~np.isfinite(b) & (np.isnan(a) & np.isnan(b) | (a == b))
        diff = np.where(same_nonfinite, 0.0, np.where(np.isnan(diff), np.inf, diff))
        abs_b = np.abs(np.where(np.isfinite(b), b, 0.0))
        bound = tol.atol + tol.rtol * abs_b + extra
        if ref.dtype.kind in "iub" and cand.dtype.kind in "iub":
            bound = np.zeros_like(b)  # labels, indices, counts: identical or wrong
        fails = diff > bound
        report = _report(name, diff, abs_b, extra, fails, tol)
    if b.ndim == 2 and b.shape[1] > 1 and b.shape[0] > 0:
        report.top_move_agreement = float((np.argmax(a, axis=1) == np.argmax(b, axis=1)).mean())
    if b.ndim == 4 and b.size:
        _image_metrics(report, a, b)
    psnr_ok = tol.min_psnr_db is None or (report.psnr_db is not None and report.psnr_db >= tol.min_psnr_db)
    report.passed = report.failing == 0 and psnr_ok
    return report


def _image_metrics(report: OutputReport, a: np.ndarray, b: np.ndarray) -> None:
    """PSNR (peak 1.0: images in [0, 1]), SNR and cosine similarity of two images batches."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        err = a - b
        mse = float(np.mean(err * err))
        signal = float(np.mean(b * b))
        report.psnr_db = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
        report.snr_db = float("inf") if mse == 0 else float(10 * np.log10(signal / mse))
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        report.cosine = float(np.sum(a * b) / norms) if norms else 0.0
    if not np.isfinite(mse):
        report.psnr_db = report.snr_db = float("-inf")


def _report(name: str, diff: np.ndarray, abs_b: np.ndarray, extra: np.ndarray, fails: np.ndarray,
            tol: Tolerance) -> OutputReport:
    with np.errstate(divide="ignore", invalid="ignore"):  # a difference where the reference is 0: infinitely relative
        rel = np.where(diff == 0, 0.0, np.where(abs_b > 0, diff / abs_b, np.inf))
    return OutputReport(
        name=name,
        shape=list(diff.shape),
        max_abs=_max(diff),
        max_rel=_max(rel),
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        p99_abs=float(np.percentile(diff, 99)) if diff.size else 0.0,
        required_atol=_max(np.maximum(diff - tol.rtol * abs_b - extra, 0.0)),
        required_rtol=_max(np.maximum(diff - tol.atol - extra, 0.0) / np.maximum(abs_b, 1e-300)),
        max_allowance=_max(extra),
        failing=int(fails.sum()),
        worst_index=[int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)] if diff.size else [],
    )


def _max(x: np.ndarray) -> float:
    return float(np.max(x)) if x.size else 0.0
