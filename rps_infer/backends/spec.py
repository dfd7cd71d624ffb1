"""Backend specs and precision variants: what a backend is asked for, not how it runs.

A backend is named everywhere (zoo manifest, ``--backends``, benchmark ids) by a spec
``<backend>-<device>[:variant...]``: ``onnxrt-cpu``, ``onnxrt-tensorrt:int8``,
``onnxrt-cuda:iobinding``, ``pyt-cpu:channels_last``, ``pyt-cuda:fp16:compile``; the device
``auto`` (``onnxrt-auto``) picks the best one out loud (:func:`rps_infer.runtime.choose_device`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rps_infer.backends import registry
from rps_infer.errors import RpsInferError

AUTO = "auto"  # the device: the best one that starts here and agrees with the CPU (rps_infer.runtime)


@dataclass(frozen=True)
class BackendSpec:
    """A parsed ``<backend>-<device>[:variant...]``."""

    backend: str
    device: str
    variants: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        """Parse and validate a spec; :class:`RpsInferError` says what is wrong."""
        head, *variants = text.split(":")
        backend, _, device = head.partition("-")
        known_backends = registry.backends()
        if backend not in known_backends:
            raise RpsInferError(f"backend spec {text!r}: backend must be one of {tuple(known_backends)}")
        info = known_backends[backend]
        device = device or "cpu"
        if device != AUTO and device not in info.devices:
            raise RpsInferError(f"backend spec {text!r}: {backend} has no device {device!r}; "
                                f"choose one of {(*info.devices, AUTO)}")
        known = info.variants
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise RpsInferError(f"backend spec {text!r}: unknown variant(s) {unknown}; "
                                f"{backend} takes {sorted(known) or 'none'}")
        precisions = [v for v in variants if known[v][0] == "precision"]
        if len(precisions) > 1:
            raise RpsInferError(f"backend spec {text!r}: one precision at most, got {precisions}")
        return cls(backend, device, tuple(variants))

    def options(self) -> dict[str, object]:
        """The backend constructor options the variants stand for."""
        return dict(registry.get(self.backend).variants[v] for v in self.variants)

    @property
    def precision(self) -> str:
        """``fp32`` unless a variant lowers it."""
        return str(self.options().get("precision", "fp32"))

    def with_precision(self, precision: str) -> BackendSpec:
        """This spec at ``precision`` (ONNX Runtime specs only: other backends are returned unchanged)."""
        if self.backend != "onnxrt" or precision == "fp32" or precision in self.variants:
            return self
        if precision not in registry.get("onnxrt").precisions:
            raise RpsInferError(f"onnxrt has no precision {precision!r}; choose fp32, fp16 or int8")
        return BackendSpec(self.backend, self.device, (*self.variants, precision))

    def __str__(self) -> str:
        return ":".join((f"{self.backend}-{self.device}", *self.variants))


PRECISIONS = ("fp32", "fp16", "int8")  # ONNX Runtime: a converted graph, or TensorRT builder flags
TORCH_PRECISIONS = ("fp32", "fp16", "bf16")  # autocast dtypes for the PyTorch backend
CALIBRATION_TABLE = "calibration.flatbuffers"  # the file name TensorRT's INT8 mode reads (ORT format)


def cache_dir(source: str | Path) -> Path:
    """``models/x.onnx`` -> ``models/x.cache/``: precision variants and provider caches of a model."""
    source = Path(source)
    return source.with_name(f"{source.stem}.cache")


def variant_path(source: str | Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.cache/fp16.onnx`` / ``model.cache/int8.onnx`` (fp32: the source itself)."""
    if precision not in PRECISIONS:
        raise RpsInferError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return Path(source) if precision == "fp32" else cache_dir(source) / f"{precision}.onnx"
