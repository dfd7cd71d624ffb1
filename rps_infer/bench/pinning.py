"""Thread pinning for benchmarks: one place that decides how many threads each framework gets.

Defaults pin everything to one thread (ONNX Runtime intra-op 1 without spinning and
inter-op 1, torch 1, TensorFlow 1 intra / 1 inter), so numbers are comparable and
stable on a shared 2-core machine.
"""

from __future__ import annotations


def pin_threads(threads: int, *, tensorflow: bool = True) -> None:
    """Set torch's (and TensorFlow's) thread counts once per process, before they run anything.

    ``tensorflow=False`` leaves TensorFlow unimported (importing it costs seconds).
    """
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    if tensorflow:
        try:
            from rps_infer.backends.tf import set_tensorflow_threads

            set_tensorflow_threads(threads)
        except ImportError:
            pass


def backend_options(spec: str, threads: int) -> dict:
    """Pinned-thread options for a backend-device spec such as ``onnxrt-cpu``."""
    name = spec.partition("-")[0]  # variants (":fp16") do not change thread options
    if name == "onnxrt":
        return {"intra_op_threads": threads, "inter_op_threads": 1, "spinning": False}
    return {"threads": threads} if name in ("pyt", "tf", "sklearn", "xgboost") else {}
