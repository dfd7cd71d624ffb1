"""Native classifiers: a scikit-learn (``sklearn``) or XGBoost (``xgboost``) model in its own runtime.

The reference the ONNX graphs of the digits classifiers are judged against, and the
"before" of their benchmark. Outputs have the ONNX graphs' names: ``label`` (int64) and
``probabilities`` (the native dtype: float64 for scikit-learn's forests, float32 for
XGBoost).

``label`` is the class with the highest probability, taken from the one
``predict_proba`` call (what ``predict`` computes for these estimators, a test checks
it), so the benchmark does not charge the native side for predicting twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.tensors import Feeds, TensorSpec


class NativeClassifierBackend(Backend):
    """A fitted classifier read from a safe native file (see :mod:`rps_infer.formats.native`)."""

    name = "native"

    def __init__(self, path: str | Path, device: str = "cpu", *, threads: int | None = None) -> None:
        from rps_infer.formats.native import native_kind

        kind = native_kind(path) or "sklearn"
        registry.check_device(kind, device)
        super().__init__(device)
        self.path = Path(path)
        self.kind = kind
        self.name = self.kind  # sklearn / xgboost: the spec's backend name
        self.threads = threads
        self.model = None

    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        from rps_infer.formats.native import read_native

        self.model = read_native(self.path)
        if self.threads is not None and self.kind == "xgboost":
            self.model.set_params(n_jobs=self.threads)
        features = int(self.model.n_features_in_)
        classes = len(self.model.classes_)
        probe = self.model.predict_proba(np.zeros((1, features), np.float32))
        inputs = (TensorSpec("input", "float32", (None, features)),)
        outputs = (TensorSpec("label", "int64", (None,)),
                   TensorSpec("probabilities", str(probe.dtype), (None, classes)))
        return inputs, outputs

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        probabilities = self.model.predict_proba(feeds["input"])
        labels = np.asarray(self.model.classes_)[np.argmax(probabilities, axis=1)].astype(np.int64)
        return {"label": labels, "probabilities": probabilities}

    def _deactivate_impl(self) -> None:
        self.model = None

    def _describe_impl(self) -> dict[str, Any]:
        from rps_infer.formats.native import describe

        info = describe(self.model) if self.model is not None else {}
        return {**info, "estimator": type(self.model).__name__, "threads": self.threads}
