"""THE way from a model file and a backend spec to a backend ready to run.

:func:`open_backend` parses the spec (``onnxrt-cuda:fp16``), builds what the spec needs
first through :mod:`rps_infer.convert` (a parity-proven fp16 / INT8 variant of an ONNX
graph, a TensorRT INT8 calibration table), applies pinned-thread options, and creates
the backend through :mod:`rps_infer.backends.registry`. Backends themselves only run
files that exist. :func:`pin_threads` sets the frameworks' process-wide thread counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.backends.spec import BackendSpec, cache_dir
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
    from the fp32 graph and gets an INT8 calibration table.
    """
    model = model if isinstance(model, ModelFile) else open_model(model)
    parsed = BackendSpec.parse(str(spec)) if spec is not None else None
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
