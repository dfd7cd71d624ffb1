"""PyTorch backend, cpu or cuda, under inference_mode: eager by default, optionally
``torch.compile``, channels_last memory format and fp16/bf16 autocast, so ONNX Runtime
is compared with PyTorch at its best as well as with plain eager.

It runs any PyTorch network: the project's own, TorchScript, a ``torch.export`` program,
a user class with its ``state_dict``, or an in-memory ``nn.Module``. Inputs keep their
names (from ``--input-shape``, the network's ``io_specs()`` or the program); outputs are
named after what the network returns: ``output`` for one tensor, ``output_0``... for a
tuple, the keys of a dict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rps_infer.backends import registry
from rps_infer.backends.base import Backend
from rps_infer.backends.spec import TORCH_PRECISIONS
from rps_infer.errors import ProviderUnavailableError, UnsupportedModelError
from rps_infer.tensors import Feeds, TensorSpec

PROBE_BATCH = 2  # a batch other than 1, so a baked-in batch shows in the output specs


class TorchBackend(Backend):
    """A PyTorch network run eagerly.

    Args:
        source: a :class:`~rps_infer.formats.ModelFile` (or a path to one), or a ``torch.nn.Module``.
        device: ``cpu`` or ``cuda``.
        input_specs: the inputs of an in-memory module without ``io_specs()``.
        threads: ``torch.set_num_threads`` for this process (``None`` leaves it).
        compile: wrap the module in ``torch.compile`` (inductor; compiles on the first calls).
        channels_last: store weights and 4-D inputs NHWC (faster convolutions on many CPUs/GPUs).
        precision: ``fp32``, or ``fp16`` / ``bf16`` autocast.
    """

    name = "pyt"

    def __init__(self, source: Any, device: str = "cpu", *, input_specs: Sequence[TensorSpec] | None = None,
                 threads: int | None = None, compile: bool = False, channels_last: bool = False,
                 precision: str = "fp32") -> None:
        registry.check_device("pyt", device)
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"pyt precision must be one of {TORCH_PRECISIONS}, got {precision!r}")
        super().__init__(device)
        self.source = source
        self.given_specs = tuple(input_specs) if input_specs else None
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
        module, inputs = self._network()
        _eval(module)
        module = module.to(self.device)
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.channels_last:
            module = module.to(memory_format=self._memory_format)
        self._torch_device = torch.device(self.device)
        self._autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        self._eager = module  # hooks need the eager module, not a compiled graph
        self.module = torch.compile(module) if self.compile else module
        self._input_names = [s.name for s in inputs]
        outputs = getattr(module, "io_specs", lambda: (None, None))()[1] or self._probe_outputs(inputs)
        return inputs, tuple(outputs)

    @property
    def platform(self) -> str:
        """``pytorch_libtorch`` for TorchScript (what Triton's libtorch backend runs), else
        ``pytorch_eager``: a Python ``nn.Module`` (Triton has no platform for it)."""
        import torch

        return "pytorch_libtorch" if isinstance(self.activate()._eager, torch.jit.ScriptModule) else "pytorch_eager"

    @property
    def network(self):
        """The eager ``torch.nn.Module`` this backend runs (activated on first use)."""
        return self.activate()._eager

    def _network(self):
        """The module and its input specs, from whatever the backend was given."""
        from rps_infer.formats import ModelFile, open_model, torchfile

        source = open_model(self.source) if isinstance(self.source, (str, Path)) else self.source
        if isinstance(source, ModelFile):
            module = torchfile.read_module(source)
            return module, self.given_specs or torchfile.input_specs(source, module)
        specs = self.given_specs or (tuple(source.io_specs()[0]) if hasattr(source, "io_specs") else None)
        if specs is None:
            raise UnsupportedModelError("an in-memory torch.nn.Module needs input_specs (or an io_specs() method)")
        return source, specs

    def _probe_outputs(self, inputs: Sequence[TensorSpec]) -> list[TensorSpec]:
        """Output specs from one run on generated inputs: names from what the network returns,
        dims from the result (the batch dim dynamic when the inputs' is)."""
        from rps_infer.inputs import make_feeds

        feeds = make_feeds(inputs, PROBE_BATCH if inputs[0].shape[0] is None else inputs[0].shape[0], seed=0)
        results = self._run(feeds)
        dynamic = inputs[0].shape[0] is None
        return [TensorSpec(name, str(array.dtype), (None if dynamic and array.ndim else array.shape[0],
                                                    *array.shape[1:]) if array.ndim else ())
                for name, array in results.items()]

    def _run(self, feeds: Feeds, module=None) -> dict[str, np.ndarray]:
        import torch

        autocast = (torch.autocast(self.device, dtype=self._autocast) if self._autocast is not None
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            args = [self._tensor(feeds[name]) for name in self._input_names]
            # .cpu() synchronises a CUDA device, so the call's time includes the kernel.
            return named_outputs((module or self.module)(*args))

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        return self._run(feeds)

    def _taps_impl(self, feeds: Feeds) -> list[tuple[str, np.ndarray]]:
        import torch

        from rps_infer.backends.taps import torch_taps

        def run() -> None:
            with torch.inference_mode():
                self._eager(*[self._tensor(feeds[name]) for name in self._input_names])

        return torch_taps(self._eager, run)

    def block_taps(self, feeds: Feeds) -> list | None:
        """(title, module, input, output) of each block call, in order: the blocks the module names
        in ``parity_blocks()`` (the U-Net's encoder, bottleneck and decoder blocks), else its leaf
        modules, titled ``"image.3 (Conv2d)"``; None when it has neither (TorchScript)."""
        import torch

        from rps_infer.backends.taps import leaf_blocks, torch_block_taps

        self.activate()
        named = getattr(self._eager, "parity_blocks", None)
        blocks = named() if named is not None else leaf_blocks(self._eager)
        if not blocks:
            return None

        def run() -> None:
            with torch.inference_mode():
                self._eager(*[self._tensor(feeds[name]) for name in self._input_names])

        return torch_block_taps(blocks, run)

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


def named_outputs(result: Any) -> dict[str, np.ndarray]:
    """What a network returned, as name -> float32/host array: ``output`` for one tensor,
    ``output_0``... for a tuple or list, the keys of a dict."""
    import torch

    if isinstance(result, torch.Tensor):
        if result.is_floating_point():  # the hot path of every single-output network
            return {"output": result.float().cpu().numpy()}
        items = [("output", result)]
    elif isinstance(result, dict):
        items = list(result.items())
    elif isinstance(result, (list, tuple)):
        items = [(f"output_{i}", t) for i, t in enumerate(result)]
    else:
        raise UnsupportedModelError(f"the network returned a {type(result).__name__}, not tensors")
    out = {}
    for name, tensor in items:
        tensor = tensor.detach()
        out[str(name)] = (tensor.float() if tensor.is_floating_point() else tensor).cpu().numpy()
    return out


def _eval(module) -> None:
    """Eval mode where the module allows it (an exported program's module refuses ``eval()``)."""
    with contextlib.suppress(NotImplementedError, RuntimeError):
        module.eval()


def set_torch_threads(threads: int) -> None:
    """``torch.set_num_threads`` for this process (the registry's process-wide pin for pyt)."""
    import torch

    torch.set_num_threads(threads)
