"""ONNX Runtime backend: any ONNX model on CPU, CUDA, TensorRT, OpenVINO, CoreML or DirectML.

ONNX Runtime silently falls back to the CPU when a requested provider fails to
load. This backend checks ``get_providers()`` after creating the session and raises
:class:`ProviderUnavailableError` when the requested provider is not active, unless
``allow_fallback=True``.

Provider settings live in :meth:`OnnxRuntimeBackend.provider_settings`, the one place
that knows each execution provider's option names: CUDA (cuDNN algorithm search, TF32
off by default so parity runs compare true fp32), TensorRT (fp16 / INT8 with a
calibration table, engine and timing caches, workspace size), OpenVINO, CoreML and
DirectML. With ``io_binding=True`` inputs are copied to the device and outputs back
explicitly, so :meth:`OnnxRuntimeBackend.infer_phases` can time the copies apart from
the compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.backends.base import Backend
from rps_infer.backends.spec import CALIBRATION_TABLE, PRECISIONS
from rps_infer.backends.spec import cache_dir as model_cache_dir
from rps_infer.errors import ModelFormatError, ProviderUnavailableError
from rps_infer.tensors import Feeds, TensorSpec

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

def _spec(value) -> TensorSpec:
    """An ORT NodeArg as a TensorSpec; symbolic dims keep the names the graph gives them."""
    dims = tuple(value.shape)
    return TensorSpec(value.name, _ORT_TYPES.get(value.type, value.type),
                      tuple(d if isinstance(d, int) else None for d in dims),
                      tuple(d if isinstance(d, str) else None for d in dims))


GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
CUDNN_SEARCH = ("exhaustive", "heuristic", "default")
# Where an OrtValue lives for IO binding, per device (OrtValue device names).
_BINDING_DEVICES = {"cuda": "cuda", "tensorrt": "cuda", "directml": "dml"}


class OnnxRuntimeBackend(Backend):
    """An ONNX model in an ``onnxruntime.InferenceSession``.

    Args:
        path: the ``.onnx`` file.
        device: a key of :data:`DEVICE_PROVIDERS` (default ``cpu``).
        intra_op_threads / inter_op_threads: ``None`` leaves ONNX Runtime's default.
        graph_optimization: one of :data:`GRAPH_OPTIMIZATION_LEVELS` (default ``all``).
        spinning: allow intra-op threads to spin while waiting (``None``: ORT default).
        allow_fallback: accept a session on which the requested provider is not active.
        precision: ``fp32``, ``fp16`` or ``int8``. TensorRT builds the reduced-precision
            engine from the fp32 ``path`` (INT8 from the calibration table in ``cache_dir``);
            other providers run ``path`` as it is, which is then the converted graph
            (``<stem>.cache/fp16.onnx``; :func:`rps_infer.runtime.open_backend` builds both).
        io_binding: bind inputs and outputs to the device explicitly (see :meth:`infer_phases`).
        cudnn_search: cuDNN convolution algorithm search on cuda (``exhaustive`` finds the
            fastest kernels at the cost of a slower first call).
        tf32: allow TF32 math on cuda (off: parity runs compare true fp32).
        workspace_gb: TensorRT builder workspace limit.
        cache_dir: TensorRT engine/timing caches and calibration table, OpenVINO and
            CoreML model caches (default ``<stem>.cache/<device>`` beside the model).
        provider_options: options passed to the provider, overriding the above.
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
        precision: str = "fp32",
        io_binding: bool = False,
        cudnn_search: str = "exhaustive",
        tf32: bool = False,
        workspace_gb: float = 2.0,
        cache_dir: str | Path | None = None,
        provider_options: dict[str, Any] | None = None,
    ) -> None:
        if device not in DEVICE_PROVIDERS:
            raise ProviderUnavailableError(
                f"unknown onnxrt device {device!r}; choose one of {', '.join(DEVICE_PROVIDERS)}"
            )
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}")
        if precision not in PRECISIONS:
            raise ValueError(f"onnxrt precision must be one of {PRECISIONS}, got {precision!r}")
        if cudnn_search not in CUDNN_SEARCH:
            raise ValueError(f"cudnn_search must be one of {CUDNN_SEARCH}, got {cudnn_search!r}")
        super().__init__(device)
        self.path = Path(path)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.graph_optimization = graph_optimization
        self.spinning = spinning
        self.allow_fallback = allow_fallback
        self.precision = precision
        self.io_binding = io_binding
        self.cudnn_search = cudnn_search
        self.tf32 = tf32
        self.workspace_gb = workspace_gb
        self.cache_dir = Path(cache_dir) if cache_dir else model_cache_dir(self.path) / device
        self.provider_options = provider_options or {}
        self.session = None
        self._tap_session = None

    def provider_settings(self) -> dict[str, str]:
        """The requested provider's options for this device and precision."""

        def flag(on: bool) -> str:
            return "1" if on else "0"

        options = {}
        if self.device == "tensorrt":
            options = {
                "trt_fp16_enable": flag(self.precision in ("fp16", "int8")),  # INT8 falls back to fp16, not fp32
                "trt_int8_enable": flag(self.precision == "int8"),
                "trt_engine_cache_enable": "1",
                "trt_engine_cache_path": str(self.cache_dir),
                "trt_timing_cache_enable": "1",
                "trt_timing_cache_path": str(self.cache_dir),
                "trt_max_workspace_size": str(int(self.workspace_gb * 2**30)),
            }
            if self.precision == "int8":
                # TensorRT looks the table up in the engine cache directory.
                options.update(trt_int8_calibration_table_name=CALIBRATION_TABLE,
                               trt_int8_use_native_calibration_table="0")
        elif self.device == "cuda":
            options = {"cudnn_conv_algo_search": self.cudnn_search.upper(), "use_tf32": flag(self.tf32),
                       "do_copy_in_default_stream": "1"}
        elif self.device == "openvino":
            options = {"device_type": "CPU", "cache_dir": str(self.cache_dir),
                       "precision": "FP16" if self.precision == "fp16" else "ACCURACY"}
            if self.intra_op_threads:
                options["num_of_threads"] = str(self.intra_op_threads)
        elif self.device == "coreml":
            options = {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL", "ModelCacheDirectory": str(self.cache_dir)}
        elif self.device == "directml":
            options = {"device_id": "0"}
        options.update({k: str(v) for k, v in self.provider_options.items()})
        return options

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
        if self.device == "directml":
            # DirectML supports neither memory patterns nor parallel execution.
            options.enable_mem_pattern = False
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
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
        if not self.path.is_file():
            raise ModelFormatError(self.path, "<file>", "an existing .onnx file", "no such file")
        if self.device in ("tensorrt", "openvino", "coreml"):
            self.cache_dir.mkdir(parents=True, exist_ok=True)  # the provider's own caches
        options = self.provider_settings()
        # ORT refuses to create a session naming a provider its build lacks; with
        # allow_fallback such a provider is left out and the session runs on the CPU.
        providers: list[Any] = [(wanted, options)] if wanted in available else []
        if self.device == "tensorrt" and "CUDAExecutionProvider" in available:
            providers.append("CUDAExecutionProvider")  # nodes TensorRT cannot take run on CUDA, not the CPU
        if wanted != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
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
        # The C++ session's run: the Python wrapper's run re-validates what check_feeds has checked
        # (names; numpy arrays, not OrtValues) and offers an EP fallback this backend refuses
        # anyway, at ~3 us per call on a cold serving path. The public run where there is none.
        self._run = getattr(session, "_sess", session).run
        inputs, outputs = (tuple(_spec(v) for v in values) for values in (session.get_inputs(),
                                                                          session.get_outputs()))
        self._output_list = [o.name for o in outputs]
        self._binding_device = _BINDING_DEVICES.get(self.device, "cpu") if self.io_binding else None
        return inputs, outputs

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        if self._binding_device is not None:
            return self._fetch(self._run_bound(self._bind(feeds)))
        # run() returns one array per requested name, in order (no strict zip: this is the hot path)
        return dict(zip(self._output_list, self._run(self._output_list, feeds, None)))  # noqa: B905

    def _taps_impl(self, feeds: Feeds) -> list[tuple[str, np.ndarray]]:
        import onnxruntime as ort

        from rps_infer.backends.taps import onnx_marked

        if getattr(self, "_tap_session", None) is None:
            graph, self._tap_names = onnx_marked(self.path)
            # Same providers; no fusions, so every marked tensor is the one the graph names.
            options = self.session_options()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self._tap_session = ort.InferenceSession(graph, options, providers=self.session.get_providers())
        return list(zip(self._tap_names, self._tap_session.run(self._tap_names, dict(feeds)), strict=True))

    def infer_phases(self, feeds: Feeds) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Like :meth:`infer` with IO binding, also returning the seconds spent copying inputs
        to the device (``copy_in``), computing (``compute``) and copying outputs back (``copy_out``)."""
        import time

        if not self.io_binding:
            raise ValueError("infer_phases needs io_binding=True")
        self.activate()
        self.check_feeds(feeds)
        t0 = time.perf_counter()
        bound = self._bind(feeds)
        t1 = time.perf_counter()
        self._run_bound(bound)
        t2 = time.perf_counter()
        outputs = self._fetch(bound)
        t3 = time.perf_counter()
        return outputs, {"copy_in": t1 - t0, "compute": t2 - t1, "copy_out": t3 - t2}

    def _bind(self, feeds: Feeds):
        import onnxruntime as ort

        binding = self.session.io_binding()
        device = self._binding_device
        # The OrtValues must outlive the run: keep them on the binding object.
        values = [ort.OrtValue.ortvalue_from_numpy(array, device, 0) for array in feeds.values()]
        for name, value in zip(feeds, values, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in self._output_list:
            binding.bind_output(name, device, 0)
        binding.synchronize_inputs()
        return binding, values

    def _run_bound(self, bound):
        binding, _ = bound
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return bound

    def _fetch(self, bound) -> dict[str, np.ndarray]:
        return dict(zip(self._output_list, bound[0].copy_outputs_to_cpu(), strict=True))

    def _deactivate_impl(self) -> None:
        self.session = self._tap_session = None

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
            "precision": self.precision,
            "io_binding": self.io_binding,
        }
        if self.session is not None:
            info["active_providers"] = self.session.get_providers()
        return info
