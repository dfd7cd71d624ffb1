"""Tensors as every part of the package describes them: :class:`TensorSpec` and ``Feeds``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of a tensor; ``None`` marks a dynamic dim.

    ``dims`` keeps the names a model file gives its dims (``N``, ``batch``, ``unk__3``), or
    None where it names none; they are shown as written."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    dims: tuple[str | None, ...] | None = None

    def describe(self) -> str:
        """E.g. ``input: float32[batch, 81]``."""
        names = self.dims or (None,) * len(self.shape)
        dims = ", ".join(str(d) if d is not None else n or ("batch" if i == 0 else "?")
                         for i, (d, n) in enumerate(zip(self.shape, names, strict=True)))
        return f"{self.name}: {self.dtype}[{dims}]"


def shape_text(shape: tuple[int | None, ...]) -> str:
    """``[N, 81]``: a shape with ``N`` for each dynamic dim."""
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
