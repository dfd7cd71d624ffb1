"""Backends: one interface (:class:`~rps_infer.backends.base.Backend`), several runtimes.

Backend modules import their framework lazily, so importing this package is cheap.
"""

from rps_infer.backends.base import Backend, TensorSpec

BACKEND_NAMES = ("onnxrt", "pyt", "tf", "numpy")

__all__ = ["BACKEND_NAMES", "Backend", "TensorSpec"]
