"""PyTorch backend, cpu or cuda, under inference_mode: eager by default, optionally
``torch.compile``, channels_last memory format and fp16/bf16 autocast, so ONNX Runtime
is compared with PyTorch at its best as well as with plain eager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.backends.spec import TORCH_PRECISIONS
from rps_infer.errors import ProviderUnavailableError
from rps_infer.tensors import Feeds, TensorSpec


class TorchBackend(Backend):
    """A ``torch.nn.Module`` (or an rps_infer ``.pt`` file) run eagerly.

    Args:
        source: a ``.pt`` file written by rps_infer, or a module with ``io_specs()``
            (the RPS MLP, the lipsync U-Net); inputs are passed in spec order.
        device: ``cpu`` or ``cuda``.
        threads: ``torch.set_num_threads`` for this process (``None`` leaves it).
        compile: wrap the module in ``torch.compile`` (inductor; compiles on the first calls).
        channels_last: store weights and 4-D inputs NHWC (faster convolutions on many CPUs/GPUs).
        precision: ``fp32``, or ``fp16`` / ``bf16`` autocast.
    """

    name = "pyt"

    def __init__(self, source: Any, device: str = "cpu", *, threads: int | None = None,
                 compile: bool = False, channels_last: bool = False, precision: str = "fp32") -> None:
        registry.check_device("pyt", device)
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"pyt precision must be one of {TORCH_PRECISIONS}, got {precision!r}")
        super().__init__(device)
        self.source = source
        self.threads = threads
        self.compile = compile
        self.channels_last = channels_last
        self.precision = precision
        self.module = None

    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise ProviderUnavailableError(
                f"pyt device 'cuda' requested but torch {torch.__version__} sees no CUDA GPU"
            )
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if isinstance(self.source, (str, Path)):
            from rps_infer.formats import torchfile

            module = torchfile.read_module(self.source)
        else:
            module = self.source
        module = module.eval().to(self.device)
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        module = module.to(memory_format=self._memory_format)
        self._torch_device = torch.device(self.device)
        self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        self._eager = module  # hooks need the eager module, not a compiled graph
        self.module = torch.compile(module) if self.compile else module
        inputs, outputs = module.io_specs()
        self._input_names = [s.name for s in inputs]
        return inputs, outputs

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        import contextlib

        import torch

        autocast = (torch.autocast(self.device, dtype=self._autocast) if self._autocast is not None
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            args = [self._tensor(feeds[name]) for name in self._input_names]
            # .cpu() synchronises a CUDA device, so the call's time includes the kernel.
            y = self.module(*args).float().cpu().numpy()
        return {"output": y}

    def _taps_impl(self, feeds: Feeds) -> list[tuple[str, np.ndarray]]:
        import torch

        from rps_infer.backends.taps import torch_taps

        def run() -> None:
            with torch.inference_mode():
                self._eager(*[self._tensor(feeds[name]) for name in self._input_names])

        return torch_taps(self._eager, run)

    def block_taps(self, feeds: Feeds) -> list | None:
        """(title, module, input, output) of each block the module names in ``parity_blocks()``
        (the U-Net's encoder, bottleneck and decoder blocks), or None if it names none."""
        import torch

        from rps_infer.backends.taps import torch_block_taps

        self.activate()
        blocks = getattr(self._eager, "parity_blocks", None)
        if blocks is None:
            return None

        def run() -> None:
            with torch.inference_mode():
                self._eager(*[self._tensor(feeds[name]) for name in self._input_names])

        return torch_block_taps(blocks(), run)

    def _tensor(self, array: np.ndarray):
        import torch

        tensor = torch.from_numpy(array).to(self._torch_device)
        return tensor.contiguous(memory_format=self._memory_format) if tensor.ndim == 4 else tensor

    def _deactivate_impl(self) -> None:
        self.module = self._eager = None

    def _describe_impl(self) -> dict[str, Any]:
        import torch

        info = {"framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                "compile": self.compile, "channels_last": self.channels_last, "precision": self.precision}
        if self.device == "cuda" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        return info


def set_torch_threads(threads: int) -> None:
    """``torch.set_num_threads`` for this process (the registry's process-wide pin for pyt)."""
    import torch

    torch.set_num_threads(threads)
