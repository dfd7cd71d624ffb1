"""ONNX Runtime backend: any ONNX model on CPU, CUDA, TensorRT, OpenVINO, CoreML or DirectML.

ONNX Runtime silently falls back to the CPU when a requested provider fails to
load. This backend checks ``get_providers()`` after creating the session and raises
:class:`ProviderUnavailableError` when the requested provider is not active, unless
``allow_fallback=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.backends.base import Backend, Feeds, TensorSpec
from rps_infer.errors import ModelFormatError, ProviderUnavailableError

DEVICE_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}

# ONNX tensor element type names (as ORT reports them) -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntimeBackend(Backend):
    """An ONNX model in an ``onnxruntime.InferenceSession``.

    Args:
        path: the ``.onnx`` file.
        device: a key of :data:`DEVICE_PROVIDERS` (default ``cpu``).
        intra_op_threads / inter_op_threads: ``None`` leaves ONNX Runtime's default.
        graph_optimization: one of :data:`GRAPH_OPTIMIZATION_LEVELS` (default ``all``).
        spinning: allow intra-op threads to spin while waiting (``None``: ORT default).
        allow_fallback: accept a session on which the requested provider is not active.
        provider_options: options passed to the requested provider.
    """

    name = "onnxrt"

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization: str = "all",
        spinning: bool | None = None,
        allow_fallback: bool = False,
        provider_options: dict[str, Any] | None = None,
    ) -> None:
        if device not in DEVICE_PROVIDERS:
            raise ProviderUnavailableError(
                f"unknown onnxrt device {device!r}; choose one of {', '.join(DEVICE_PROVIDERS)}"
            )
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}")
        super().__init__(device)
        self.path = Path(path)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.graph_optimization = graph_optimization
        self.spinning = spinning
        self.allow_fallback = allow_fallback
        self.provider_options = provider_options or {}
        self.session = None

    def session_options(self):  # -> onnxruntime.SessionOptions
        """The SessionOptions this backend creates its session with."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            options.inter_op_num_threads = self.inter_op_threads
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        if self.spinning is not None:
            flag = "1" if self.spinning else "0"
            options.add_session_config_entry("session.intra_op.allow_spinning", flag)
            options.add_session_config_entry("session.inter_op.allow_spinning", flag)
        return options

    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        import onnxruntime as ort

        wanted = DEVICE_PROVIDERS[self.device]
        available = ort.get_available_providers()
        if wanted not in available and not self.allow_fallback:
            raise ProviderUnavailableError(
                f"onnxrt device {self.device!r} needs {wanted}, which this onnxruntime "
                f"{ort.__version__} build does not have (available: {', '.join(available)})"
            )
        # ORT refuses to create a session naming a provider its build lacks; with
        # allow_fallback such a provider is left out and the session runs on the CPU.
        providers: list[Any] = [(wanted, self.provider_options)] if wanted in available else []
        if wanted != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
        if not self.path.is_file():
            raise ModelFormatError(self.path, "<file>", "an existing .onnx file", "no such file")
        try:
            session = ort.InferenceSession(str(self.path), self.session_options(), providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            if "provider" in str(exc).lower() and wanted != "CPUExecutionProvider":
                raise ProviderUnavailableError(f"{wanted} failed to initialise: {exc}") from None
            raise ModelFormatError(self.path, "<graph>", "a model ONNX Runtime can load",
                                   str(exc).splitlines()[0]) from None
        active = session.get_providers()
        if wanted not in active and not self.allow_fallback:
            raise ProviderUnavailableError(
                f"requested {wanted} but the session runs on {active}: the provider failed "
                "to load (missing CUDA/cuDNN/TensorRT libraries?); pass allow_fallback=True to accept"
            )
        self.session = session
        inputs, outputs = (
            tuple(TensorSpec(v.name, _ORT_TYPES.get(v.type, v.type), tuple(d if isinstance(d, int) else None
                                                                         for d in v.shape)) for v in values)
            for values in (session.get_inputs(), session.get_outputs())
        )
        self._output_list = [o.name for o in outputs]
        return inputs, outputs

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        # run() returns one array per requested name, in order (no strict zip: this is the hot path)
        return dict(zip(self._output_list, self.session.run(self._output_list, feeds)))  # noqa: B905

    def _deactivate_impl(self) -> None:
        self.session = None

    def _describe_impl(self) -> dict[str, Any]:
        import onnxruntime as ort

        info: dict[str, Any] = {
            "framework": "onnxruntime",
            "version": ort.__version__,
            "model": str(self.path),
            "requested_provider": DEVICE_PROVIDERS[self.device],
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization": self.graph_optimization,
            "spinning": self.spinning,
        }
        if self.session is not None:
            info["active_providers"] = self.session.get_providers()
        return info
