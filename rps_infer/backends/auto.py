"""``--device auto``: the best device a backend has here, chosen out loud, never a silent fallback.

Each backend's devices are tried in a documented order (:data:`ORDER`: ONNX Runtime
TensorRT -> CUDA -> OpenVINO -> CoreML -> DirectML -> CPU; PyTorch and TensorFlow CUDA ->
CPU). A device counts only once its backend has really started on it (ONNX Runtime's
``get_providers()`` checked, as every backend does) and its outputs agree with the CPU's on
generated inputs (the fp32 tolerance; fp16 for TensorRT, which may pick fp16 kernels). The
choice carries the reason each better device was skipped, for the log line and reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rps_infer.backends.base import Backend
from rps_infer.errors import RpsInferError

_MISSING_PROVIDER = re.compile(r"needs (\w+ExecutionProvider), which this onnxruntime (\S+) build does not have")
ORDER = {"onnxrt": ("tensorrt", "cuda", "openvino", "coreml", "directml", "cpu"),
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
    """The first device of ``ORDER[backend]`` that starts and agrees with the CPU on ``model``
    (a :class:`~rps_infer.formats.ModelFile`); returns the choice and its activated backend."""
    from rps_infer.runtime import open_backend

    if backend not in ORDER:
        raise RpsInferError(f"--device auto needs one of the backends {sorted(ORDER)}, not {backend!r}")
    choice = DeviceChoice(backend, "cpu")
    cpu = open_backend(model, f"{backend}-cpu", **options).activate()
    for device in ORDER[backend][:-1]:
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
