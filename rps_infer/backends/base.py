"""The backend contract: one small interface every runtime implements.

Public methods (:meth:`Backend.activate`, :meth:`Backend.infer`, ...) do the checks
once; subclasses implement only the ``_*_impl`` hooks. Constructors store paths and
options; the heavy work (importing a framework, loading a model) happens in
:meth:`Backend.activate`, which :meth:`Backend.infer` calls on first use.

Backends never time themselves: timing belongs to the harness.

Input dtypes are never cast silently: a float64 array given to a float32 model is
an :class:`InputMismatchError` naming the input and both dtypes. Callers cast
explicitly (``x.astype(np.float32)``), so a benchmark never times a hidden copy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from rps_infer.errors import InputMismatchError
from rps_infer.tensors import Feeds, TensorSpec, shape_text

__all__ = ["Backend", "Feeds", "TensorSpec"]


class Backend(ABC):
    """A model loaded into one runtime on one device.

    ``name`` is the backend's short name (``onnxrt``, ``pyt``, ``tf``, ``numpy``).
    Use as a context manager or call :meth:`deactivate` to free the runtime's resources.
    """

    name: ClassVar[str]

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._active = False
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()

    # -- public API: checks live here, once --------------------------------------------
    def activate(self) -> Backend:
        """Load the model into the runtime (idempotent). Returns self."""
        if not self._active:
            self._inputs, self._outputs = self._activate_impl()
            # (name, dtype, rank, fixed dims): what check_feeds compares, prepared once
            # because it runs on every call (a few microseconds matter at batch 1).
            self._checks = tuple(
                (s.name, np.dtype(s.dtype), len(s.shape), tuple((i, d) for i, d in enumerate(s.shape) if d is not None))
                for s in self._inputs
            )
            self._active = True
        return self

    def deactivate(self) -> None:
        """Release the runtime's resources; the backend may be activated again."""
        if self._active:
            self._deactivate_impl()
            self._active = False

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @property
    def platform(self) -> str:
        """The Open Inference Protocol platform name of what runs (the registry's, unless the
        loaded file decides: TorchScript vs an eager module, a SavedModel vs a Keras file)."""
        from rps_infer.backends import registry

        info = registry.backends().get(self.name)
        return info.platform if info is not None else self.name

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs, in order."""
        return self.activate()._inputs

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """The model's outputs, in order."""
        return self.activate()._outputs

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names of the model's outputs, in order."""
        return tuple(s.name for s in self.activate()._outputs)

    def infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` (name -> array) and return name -> numpy array."""
        if not self._active:
            self.activate()
        self.check_feeds(feeds)  # ~0.4 us: cheap enough to keep on every call
        return self._infer_impl(feeds)

    def taps(self, feeds: Feeds) -> list[tuple[str, np.ndarray]] | None:
        """Every intermediate tensor one run on ``feeds`` computes, in execution order, as
        ``(label, array)`` (see :mod:`rps_infer.backends.taps`); None when this runtime exposes none.
        For parity diagnosis: slow, never on the hot path."""
        if not self._active:
            self.activate()
        self.check_feeds(feeds)
        return self._taps_impl(feeds)

    def check_feeds(self, feeds: Feeds) -> None:
        """Raise :class:`InputMismatchError` unless ``feeds`` match the input specs exactly."""
        if len(feeds) != len(self._checks):
            self._feed_error(feeds)
        for name, dtype, rank, fixed in self._checks:
            array = feeds.get(name)
            if type(array) is not np.ndarray or array.dtype != dtype or array.ndim != rank:
                self._feed_error(feeds)
            shape = array.shape
            for i, d in fixed:
                if shape[i] != d:
                    self._feed_error(feeds)

    def _feed_error(self, feeds: Feeds) -> None:
        """Raise the InputMismatchError that says what is wrong with ``feeds``."""
        specs = self._inputs
        if len(feeds) != len(specs) or any(s.name not in feeds for s in specs):
            raise InputMismatchError(f"expected inputs {[s.name for s in specs]}, got {sorted(feeds)}")
        for spec in specs:
            array = feeds[spec.name]
            if not isinstance(array, np.ndarray) or array.dtype.name != spec.dtype:
                got = array.dtype.name if isinstance(array, np.ndarray) else type(array).__name__
                raise InputMismatchError(f"input {spec.name!r}: expected {spec.dtype}, got {got} (cast explicitly)")
            shape = array.shape
            if len(shape) != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, shape, strict=True)
            ):
                raise InputMismatchError(
                    f"input {spec.name!r}: expected shape {shape_text(spec.shape)}, got {list(shape)}"
                )
        raise InputMismatchError(f"inputs do not match {[s.describe() for s in specs]}")

    def describe(self) -> dict[str, Any]:
        """Framework, version, device, active providers, threads and the I/O specs."""
        info = {"backend": self.name, "device": self.device, **self._describe_impl()}
        if getattr(self, "auto_choice", None):  # picked by --device auto: what and why
            info["device_choice"] = self.auto_choice
        if self._active:
            info["inputs"] = [s.describe() for s in self._inputs]
            info["outputs"] = [s.describe() for s in self._outputs]
        return info

    # -- what a backend implements -----------------------------------------------------
    @abstractmethod
    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Load the model; return its input and output specs."""

    @abstractmethod
    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Run validated feeds; GPU backends synchronise before returning."""

    def _taps_impl(self, feeds: Feeds) -> list[tuple[str, np.ndarray]] | None:
        """Intermediate tensors of one run (default: none exposed)."""
        return None

    def _deactivate_impl(self) -> None:
        """Free resources (default: nothing to do)."""

    @abstractmethod
    def _describe_impl(self) -> dict[str, Any]:
        """Framework name and version, providers, threads."""

