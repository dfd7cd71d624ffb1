"""Every backend's facts in one place: one :class:`BackendInfo` per backend.

Adding a backend is its class plus one entry: here, or from another package through
the entry-point group ``rps_infer.backends`` (an entry point names a
:class:`BackendInfo`), or :func:`register` at run time. Everything that needs a
backend's facts reads them here: spec parsing (devices, variants), opening a model
file (formats it runs, how it runs an MLP's weights), the zoo (which artifact it
runs), serving (precisions, the v2 platform name), thread pinning.

The classes are imported by name on first use, so this module imports no framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rps_infer.errors import ProviderUnavailableError, UnsupportedModelError
from rps_infer.plugins import Registry

ENTRY_POINT_GROUP = "rps_infer.backends"


def _threads(n: int) -> dict[str, Any]:
    return {"threads": n}


def _ort_threads(n: int) -> dict[str, Any]:
    # Without spinning: spinning ORT threads steal the cores a server's gRPC threads need
    # (measured: +200 us server CPU per Predict with ORT's defaults).
    return {"intra_op_threads": n, "inter_op_threads": 1, "spinning": False}


@dataclass(frozen=True)
class BackendInfo:
    """What the package knows about one backend.

    Attributes:
        name: the spec prefix (``onnxrt`` in ``onnxrt-cuda:fp16``).
        target: ``"module:Class"`` of the :class:`~rps_infer.backends.base.Backend` subclass.
        devices: the devices it can be asked for (whether one is present is checked on activation).
        formats: model-file formats it runs as they are (see :mod:`rps_infer.formats`).
        reads: what its constructor takes for a file of those formats: ``path``, ``model`` (the
            :class:`~rps_infer.formats.ModelFile`, with its hints) or ``weights`` (the MLP
            weights the file carries, read once by :mod:`rps_infer.formats`).
        weights: ``"module:function"`` turning an MLP's weights into what the constructor takes
            (a PyTorch module, a Keras model, the weights themselves), so it runs any file that
            carries MLP weights; None when it cannot.
        variants: spec variant -> (constructor option, value).
        precisions: the precisions it offers (``fp32`` first).
        artifact: the zoo artifact role it runs (``onnx``, ``pt``, ``keras``, ``native``), or
            None for a backend that runs the zoo entry's source.
        platform: the Open Inference Protocol platform name ModelMetadata reports.
        thread_options: constructor options for a model pinned to N threads.
        pin: ``"module:function"`` setting its framework's process-wide threads, or None.
        title: a human name for reports.
    """

    name: str
    target: str
    devices: tuple[str, ...] = ("cpu",)
    formats: tuple[str, ...] = ()
    reads: str = "path"
    weights: str | None = None
    variants: Mapping[str, tuple[str, object]] = field(default_factory=dict)
    precisions: tuple[str, ...] = ("fp32",)
    artifact: str | None = None
    platform: str = ""
    thread_options: Callable[[int], dict[str, Any]] = _threads
    pin: str | None = None
    title: str = ""

    def load(self) -> type:
        """The backend class (imports its module)."""
        return load_target(self.target)


def load_target(target: str) -> Any:
    """The object named by ``"package.module:attribute"``."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


BUILTIN = (
    BackendInfo("onnxrt", "rps_infer.backends.onnxrt:OnnxRuntimeBackend",
                devices=("cpu", "cuda", "tensorrt", "openvino", "coreml", "directml"), formats=("onnx",),
                variants={"fp16": ("precision", "fp16"), "int8": ("precision", "int8"),
                          "iobinding": ("io_binding", True)},
                precisions=("fp32", "fp16", "int8"), artifact="onnx", platform="onnxruntime_onnx",
                thread_options=_ort_threads, title="ONNX Runtime"),
    BackendInfo("pyt", "rps_infer.backends.pyt:TorchBackend", devices=("cpu", "cuda"), formats=("torch",),
                reads="model",
                weights="rps_infer.nets.torch_mlp:build",
                variants={"fp16": ("precision", "fp16"), "bf16": ("precision", "bf16"), "compile": ("compile", True),
                          "channels_last": ("channels_last", True)},
                precisions=("fp32", "fp16", "bf16"), artifact="pt", platform="pytorch_eager",
                pin="rps_infer.backends.pyt:set_torch_threads", title="PyTorch"),
    BackendInfo("tf", "rps_infer.backends.tf:TensorFlowBackend", devices=("cpu", "cuda"),
                formats=("keras", "savedmodel"), reads="model",
                weights="rps_infer.nets.keras_mlp:build", artifact="keras", platform="tensorflow_keras",
                pin="rps_infer.backends.tf:set_tensorflow_threads", title="TensorFlow"),
    BackendInfo("numpy", "rps_infer.backends.ref:NumpyReferenceBackend", formats=("gojson",), reads="weights",
                weights="rps_infer.backends.ref:reference_weights", platform="numpy", thread_options=lambda n: {},
                title="numpy float64"),
    BackendInfo("sklearn", "rps_infer.backends.native:NativeClassifierBackend", formats=("skops",),
                artifact="native", platform="scikit-learn", title="scikit-learn"),
    BackendInfo("xgboost", "rps_infer.backends.native:NativeClassifierBackend", formats=("xgboost",),
                artifact="native", platform="xgboost", title="XGBoost"),
)

_REGISTRY: Registry[BackendInfo] = Registry(ENTRY_POINT_GROUP, BackendInfo, lambda: BUILTIN, "backend")


def register(info: BackendInfo) -> BackendInfo:
    """Add (or replace) a backend; returns it."""
    return _REGISTRY.register(info)


def backends() -> dict[str, BackendInfo]:
    """Every backend by name: the built-in ones, then those other packages register."""
    return _REGISTRY.all()


def get(name: str) -> BackendInfo:
    """The backend called ``name``, or an error listing the known ones."""
    return _REGISTRY.get(name)


def runs(name: str, fmt: str, has_weights: bool) -> bool:
    """Whether backend ``name`` runs a ``fmt`` file (with MLP weights or not)."""
    info = get(name)
    return fmt in info.formats or (has_weights and info.weights is not None)


def default_for(fmt: str) -> str:
    """The backend that runs a ``fmt`` file by default: the first one listing the format."""
    for info in backends().values():
        if fmt in info.formats:
            return info.name
    raise UnsupportedModelError(f"no backend runs {fmt!r} files")


def create(name: str, source: Any, device: str = "cpu", **options: Any):  # -> Backend
    """An instance of backend ``name`` on ``source`` (what its constructor takes: a path, a
    module, weights); ``options`` are its constructor's keyword arguments."""
    check_device(name, device)
    return get(name).load()(source, device, **options)


def check_device(name: str, device: str) -> None:
    """Refuse a device backend ``name`` cannot be asked for (a named error listing its devices)."""
    devices = get(name).devices
    if device not in devices:
        raise ProviderUnavailableError(f"unknown {name} device {device!r}; choose one of {', '.join(devices)}")


def for_model(model, name: str | None = None, device: str = "cpu", **options: Any):  # -> Backend
    """A backend running ``model`` (a :class:`rps_infer.formats.ModelFile`): backend ``name``,
    else the one its format names first. A backend runs a file of its own formats as it is,
    and any file carrying MLP weights through its ``weights`` builder."""
    name = name or default_for(model.format)
    info = get(name)
    if model.format in info.formats:
        source = {"weights": model.weights, "model": model}.get(info.reads, model.path)
    elif model.weights is not None and info.weights is not None:
        source = load_target(info.weights)(model.weights)
    else:
        able = [n for n in backends() if runs(n, model.format, model.weights is not None)]
        raise UnsupportedModelError(f"{model.label} cannot run on backend {name!r}; it runs on {able}")
    return create(name, source, device, **options)
