"""The numpy float64 reference backend for the RPS MLPs: the function a Go JSON file defines."""

from __future__ import annotations

from typing import Any

import numpy as np

from rps_infer.backends.base import Backend
from rps_infer.nets import mlp
from rps_infer.tensors import Feeds, TensorSpec


class NumpyReferenceBackend(Backend):
    """Exact (float64) forward of :class:`~rps_infer.nets.mlp.MLPWeights`.

    It takes the same float32 input as every other backend and returns float64; its
    taps are the layers of :func:`rps_infer.nets.mlp.layer_chain`.
    """

    name = "numpy"

    def __init__(self, weights: mlp.MLPWeights, device: str = "cpu") -> None:
        super().__init__(device)
        self.weights = weights

    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        w = self.weights
        inputs = (TensorSpec("input", "float32", (None, w.input_size)),)
        return inputs, (TensorSpec("output", "float64", (None, w.output_size)),)

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        return {"output": mlp.forward(self.weights, feeds["input"])}

    def _taps_impl(self, feeds: Feeds) -> list[tuple[str, np.ndarray]]:
        return list(mlp.layer_chain(self.weights, feeds["input"]).items())

    def _describe_impl(self) -> dict[str, Any]:
        return {"framework": "numpy", "version": np.__version__, "precision": "float64"}


def reference_weights(weights: mlp.MLPWeights) -> mlp.MLPWeights:
    """What this backend's constructor takes for any file carrying MLP weights: the weights."""
    return weights
