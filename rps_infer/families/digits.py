"""Classifiers trained on scikit-learn's bundled digits: a native file (skops / XGBoost JSON)
converted to ONNX (skl2onnx / onnxmltools)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rps_infer.families.base import Family, Progress
from rps_infer.schemas import Strict

NATIVE_BACKENDS = {"logreg": "sklearn", "rf": "sklearn", "xgb": "xgboost"}


class DigitsKeys(Strict):
    """``estimator`` (logreg, rf or xgb) and its training ``seed``."""

    estimator: Literal["logreg", "rf", "xgb"]
    seed: int


def artifacts(entry) -> dict[str, Path]:
    """``onnx`` (the serving artifact) and ``native`` (the model in its own safe format)."""
    suffix = ".json" if NATIVE_BACKENDS[entry.params.estimator] == "xgboost" else ".skops"
    return {"onnx": entry.onnx_path, "native": entry.artifact_dir / f"model{suffix}"}


def build(entry, progress: Progress = None) -> dict:
    """Train the classifier, save it natively and convert it to ONNX; the ONNX file is written
    only when it matches the native model on the whole test split (labels identical,
    probabilities within the entry's tolerance)."""
    from rps_infer.backends import registry
    from rps_infer.convert import classic
    from rps_infer.convert.proof import write_proven
    from rps_infer.formats import native, open_model
    from rps_infer.nets import digits
    from rps_infer.util import atomic_write
    from rps_infer.verify import compare_backends

    paths = artifacts(entry)
    estimator, seed = entry.params.estimator, entry.params.seed
    if progress:
        progress(f"{entry.name}: train {estimator} on the digits (seed {seed}) -> {paths['native']}")
    model = digits.train(estimator, seed)
    atomic_write(paths["native"], lambda tmp: native.write_native(model, tmp))
    proto = classic.to_onnx(model, digits.FEATURES, {
        "rps_infer.family": "classifier", "rps_infer.estimator": estimator,
        "rps_infer.tolerance": entry.tolerance, "rps_infer.inputs": entry.inputs})

    def prove(tmp: Path):
        rows = len(digits.split()[1])
        with registry.for_model(open_model(paths["native"])) as ref, registry.for_model(open_model(tmp)) as cand:
            return compare_backends(ref, cand, batch_sizes=(1, rows), tol=entry.tolerance, generator="digits",
                                    reference_label=f"{estimator} (native)",
                                    candidate_label=f"ONNX {paths['onnx'].name}")

    if progress:
        progress(f"{entry.name}: {paths['native'].name} -> {paths['onnx']}")
    report = write_proven(paths["onnx"], lambda tmp: tmp.write_bytes(proto.SerializeToString()), prove,
                          f"the ONNX graph does not match the native {estimator}")
    return {"onnx": report}


FAMILY = Family(
    name="digits", params=DigitsKeys,
    references={"native": lambda entry: f"{NATIVE_BACKENDS[entry.params.estimator]}-cpu"},
    artifacts=artifacts, build=build,
    definition=lambda entry: Path(__file__).resolve().parent.parent / "nets" / "digits.py",
    demo="rps_infer.demo:classifier_section",
)
