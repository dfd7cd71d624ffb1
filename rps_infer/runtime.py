"""THE way from a model file and a backend spec to a backend ready to run.

:func:`open_backend` parses the spec (``onnxrt-cuda:fp16``), builds what the spec needs
first through :mod:`rps_infer.convert` (a parity-proven fp16 / INT8 variant of an ONNX
graph, a TensorRT INT8 calibration table), applies pinned-thread options, and creates
the backend through :mod:`rps_infer.backends.registry`. Backends themselves only run
files that exist. :func:`pin_threads` sets the frameworks' process-wide thread counts.

``--device auto`` (:func:`choose_device`): the best device a backend has here, chosen out
loud, never a silent fallback. Each backend's devices are tried in a documented order
(:data:`DEVICE_ORDER`: ONNX Runtime TensorRT -> CUDA -> OpenVINO -> CoreML -> DirectML -> CPU;
PyTorch and TensorFlow CUDA -> CPU). A device counts only once its backend has really started
on it (ONNX Runtime's ``get_providers()`` checked, as every backend does) and its outputs agree
with the CPU's on generated inputs (the fp32 tolerance; fp16 for TensorRT, which may pick fp16
kernels). The choice carries the reason each better device was skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.backends.spec import AUTO, BackendSpec, cache_dir
from rps_infer.errors import RpsInferError
from rps_infer.formats import ModelFile, open_model


def open_backend(model: str | Path | ModelFile, spec: str | BackendSpec | None = None, *,
                 threads: int | None = None, calibration_inputs: str | None = None, **options: Any) -> Backend:
    """A backend (not yet activated) running ``model`` as ``spec`` says.

    Args:
        model: a model file path or an opened :class:`~rps_infer.formats.ModelFile`.
        spec: ``backend-device[:variant...]`` (default: the format's own backend on the CPU);
            a bare ``numpy`` means ``numpy-cpu``.
        threads: pin the model to this many threads (each backend's own options for it).
        calibration_inputs: the input generator INT8 calibration uses (default: by shape).
        options: more constructor options; they override the spec's and the threads'.

    A reduced-precision ONNX Runtime spec builds its variant on first use (proven, or a
    :class:`~rps_infer.errors.ParityError` and no file); TensorRT builds its own engines
    from the fp32 graph and gets an INT8 calibration table. The device ``auto`` returns the
    backend :func:`choose_device` picked, already activated (its ``describe()`` says why).
    """
    model = model if isinstance(model, ModelFile) else open_model(model)
    parsed = BackendSpec.parse(str(spec)) if spec is not None else None
    if parsed is not None and parsed.device == AUTO:
        return choose_device(model, parsed.backend, threads=threads, calibration_inputs=calibration_inputs,
                             **{**parsed.options(), **options})[1]
    name = parsed.backend if parsed else registry.default_for(model.format)
    device = parsed.device if parsed else "cpu"
    settings = {**(registry.get(name).thread_options(threads) if threads is not None else {}),
                **(parsed.options() if parsed else {}), **options}
    precision = settings.get("precision", "fp32")
    if name == "onnxrt" and precision != "fp32":
        model = _onnx_precision(model, device, precision, calibration_inputs, settings)
    return registry.for_model(model, name, device, **settings)


def _onnx_precision(model: ModelFile, device: str, precision: str, generator: str | None,
                    settings: dict[str, Any]) -> ModelFile:
    """The graph an ONNX Runtime ``precision`` spec runs, with what it needs built first."""
    from rps_infer.convert import precision as variants

    settings.setdefault("cache_dir", cache_dir(model.path) / device)
    if device == "tensorrt":  # TensorRT builds fp16 / INT8 engines from the fp32 graph itself
        if precision == "int8":
            variants.tensorrt_calibration(model.path, settings["cache_dir"], generator=generator)
        return model
    return open_model(variants.precision_artifact(model.path, precision, generator=generator))


def pin_threads(threads: int, backends: tuple[str, ...] | None = None) -> None:
    """Set the process-wide thread counts of the frameworks of ``backends`` (default: every
    backend with such a setting) once per process, before they run anything. A framework
    that is not installed is left alone."""
    for info in registry.backends().values():
        if info.pin is None or (backends is not None and info.name not in backends):
            continue
        try:
            setter = registry.load_target(info.pin)
        except ImportError:
            continue
        try:
            setter(threads)
        except ImportError:
            continue


_MISSING_PROVIDER = re.compile(r"needs (\w+ExecutionProvider), which this onnxruntime (\S+) build does not have")
DEVICE_ORDER = {"onnxrt": ("tensorrt", "cuda", "openvino", "coreml", "directml", "cpu"),
         "pyt": ("cuda", "cpu"), "tf": ("cuda", "cpu")}
PARITY_ROWS = 8


@dataclass
class DeviceChoice:
    """The device picked for a backend, and why each better one was not."""

    backend: str
    device: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        """``device auto: onnxrt-cpu (tensorrt: ...; cuda: ...)``."""
        reasons = "; ".join(f"{device}: {why}" for device, why in self.skipped)
        return f"device auto: {self.backend}-{self.device}" + (f" (skipped {reasons})" if reasons else "")


def choose_device(model, backend: str, **options) -> tuple[DeviceChoice, Backend]:
    """The first device of ``DEVICE_ORDER[backend]`` that starts and agrees with the CPU on ``model``
    (a :class:`~rps_infer.formats.ModelFile`); returns the choice and its activated backend."""
    if backend not in DEVICE_ORDER:
        raise RpsInferError(f"--device auto needs one of the backends {sorted(DEVICE_ORDER)}, not {backend!r}")
    choice = DeviceChoice(backend, "cpu")
    cpu = open_backend(model, f"{backend}-cpu", **options).activate()
    for device in DEVICE_ORDER[backend][:-1]:
        try:
            candidate = open_backend(model, f"{backend}-{device}", **options).activate()
        except Exception as exc:  # a device that does not start is skipped, with its reason
            choice.skipped.append((device, _first_line(exc)))
            continue
        problem = _disagreement(cpu, candidate, "fp16" if device == "tensorrt" else "fp32")
        if problem is None:
            cpu.deactivate()
            choice.device = device
            candidate.auto_choice = choice.line()
            return choice, candidate
        candidate.deactivate()
        choice.skipped.append((device, problem))
    cpu.auto_choice = choice.line()
    return choice, cpu


def _disagreement(cpu: Backend, candidate: Backend, tolerance: str) -> str | None:
    """None when ``candidate`` computes what ``cpu`` does on generated inputs, else why not."""
    from rps_infer.compare import compare
    from rps_infer.inputs import make_feeds

    rows = cpu.input_specs[0].shape[0] or PARITY_ROWS
    feeds = make_feeds(cpu.input_specs, rows, seed=0)
    result = compare(cpu.infer(feeds), candidate.infer(feeds), tolerance, reference_label="cpu",
                     candidate_label=candidate.device)
    return None if result.passed else f"its outputs differ from the CPU's: {result.failures()[0]}"


def _first_line(message: object) -> str:
    text = (str(message).strip().splitlines() or [type(message).__name__])[0]
    missing = _MISSING_PROVIDER.search(text)  # ONNX Runtime's long refusal, shortened
    return f"{missing.group(1)}: not in this onnxruntime {missing.group(2)} build" if missing else text[:200]
