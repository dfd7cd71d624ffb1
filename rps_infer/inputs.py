"""Inputs for a model: generated from its input specs, or the user's own from a file.

Generators (as Polygraphy's data loader does it, by each input's spec): ``rps-positions``
(realistic positions of the card game for an ``[N, 81]`` float input), ``digits`` (rows
of the digits test split), ``uniform`` (seeded values in [0, 1), or in a range given per
input; integers for integer inputs). Without a name the generator is chosen by shape.
Dynamic dims other than the batch become 1.

:class:`InputFile` holds the user's own tensors (``--inputs FILE.npz`` or a folder of
``.npy`` files, name -> array), checked against the model's specs before anything runs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rps_infer.errors import InputMismatchError, ModelFormatError
from rps_infer.game import FEATURE_COUNT, realistic_positions
from rps_infer.tensors import TensorSpec, shape_text

INPUT_GENERATORS = ("rps-positions", "uniform", "digits")
Ranges = Mapping[str, tuple[float, float]]


def make_feeds(specs: Sequence[TensorSpec], batch: int, seed: int = 0, generator: str | None = None,
               ranges: Ranges | None = None) -> dict[str, np.ndarray]:
    """Inputs for ``specs`` at ``batch`` from ``generator`` (default: by shape), with each
    input's values in ``ranges[name]`` (``uniform``) where given."""
    feeds = {}
    for i, spec in enumerate(specs):
        shape = (batch, *(d if d is not None else 1 for d in spec.shape[1:]))
        chosen = generator or ("rps-positions" if shape[1:] == (FEATURE_COUNT,) else "uniform")
        if (ranges or {}).get(spec.name) is not None:
            chosen = "uniform"
        if chosen == "rps-positions":
            feeds[spec.name] = realistic_positions(batch, seed + i).astype(spec.dtype)
        elif chosen == "digits":
            from rps_infer.nets.digits import digit_rows

            feeds[spec.name] = digit_rows(batch, offset=seed + i).astype(spec.dtype)
        elif chosen == "uniform":
            feeds[spec.name] = _uniform(spec, shape, seed + i, (ranges or {}).get(spec.name))
        else:
            raise ValueError(f"unknown input generator {chosen!r}; known: {INPUT_GENERATORS}")
    return feeds


def _uniform(spec: TensorSpec, shape: tuple[int, ...], seed: int, bounds: tuple[float, float] | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    low, high = bounds or ((0.0, 1.0) if dtype.kind == "f" else (0, 2))
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(int(low), int(high), size=shape).astype(dtype)
    return (low + (high - low) * rng.random(shape)).astype(dtype)


def feasible_batches(specs: Sequence[TensorSpec], batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """``batch_sizes``, or the one batch a model with a fixed first dim takes."""
    fixed = {s.shape[0] for s in specs if s.shape and s.shape[0] is not None}
    return (fixed.pop(),) if len(fixed) == 1 else tuple(batch_sizes)


class InputFile:
    """The user's own input tensors: an ``.npz`` (name -> array) or a folder of ``<name>.npy``
    (read without pickle), every input with the same number of rows."""

    def __init__(self, path: str | Path, arrays: Mapping[str, np.ndarray] | None = None) -> None:
        self.path = Path(path)
        self.arrays = dict(arrays) if arrays is not None else _read_arrays(self.path)
        rows = {a.shape[0] if a.ndim else None for a in self.arrays.values()}
        if len(rows) != 1 or None in rows:
            found = {n: list(a.shape) for n, a in self.arrays.items()}
            raise ModelFormatError(self.path, "<arrays>", "arrays with one common first dim (the batch)", str(found))
        self.rows = rows.pop()

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> InputFile:
        """In-memory tensors (name -> array) in place of a file."""
        return cls("<inputs>", {name: np.asarray(a) for name, a in arrays.items()})

    def specs(self) -> tuple[TensorSpec, ...]:
        """The tensors' own specs, the batch dim dynamic: what a network without specs takes."""
        return tuple(TensorSpec(n, a.dtype.name, (None, *a.shape[1:])) for n, a in self.arrays.items())

    def feeds(self, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        """The arrays for ``specs``; a missing input, or one whose dtype or shape the model
        does not take, is an :class:`InputMismatchError` naming it."""
        names = [s.name for s in specs]
        if sorted(self.arrays) != sorted(names):
            raise InputMismatchError(f"{self.path}: the model's inputs are {names}, the file has {sorted(self.arrays)}")
        for spec in specs:
            array = self.arrays[spec.name]
            fixed_ok = all(d is None or d == got for d, got in zip(spec.shape, array.shape, strict=False))
            if array.dtype.name != spec.dtype or array.ndim != len(spec.shape) or not fixed_ok:
                got = f"{array.dtype.name}{list(array.shape)}"
                raise InputMismatchError(f"{self.path}: input {spec.name!r}: the model takes {spec.dtype}"
                                         f"{shape_text(spec.shape)}, the file has {got}")
        return {name: self.arrays[name] for name in names}


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise ModelFormatError(path, "<folder>", "one <input name>.npy per input", "no .npy files")
            return {f.stem: np.load(f, allow_pickle=False) for f in files}
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # missing, empty, not npz/npy, pickles
        raise ModelFormatError(path, "<file>", "an .npz of arrays or a folder of .npy files (no pickles)",
                               str(exc).splitlines()[0][:200]) from None


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    """``name=lo,hi`` -> (name, (lo, hi)); ValueError says what is wrong."""
    name, sep, bounds = text.partition("=")
    parts = bounds.split(",")
    if not sep or not name or len(parts) != 2:
        raise ValueError(f"expected NAME=LOW,HIGH, got {text!r}")
    low, high = float(parts[0]), float(parts[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"expected finite LOW < HIGH, got {text!r}")
    return name, (low, high)


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``name=1x6x320x320`` -> (name, (1, 6, 320, 320)); ValueError says what is wrong."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise ValueError(f"expected NAME=DxDx... with positive dims (the first is the batch), got {text!r}")
    return name, shape


class InputChoice:
    """Where a parity check's inputs come from: the user's file, else a generator (and ranges)."""

    def __init__(self, generator: str | None = None, ranges: Ranges | None = None,
                 file: InputFile | None = None) -> None:
        self.generator, self.ranges, self.file = generator, dict(ranges or {}), file

    def batches(self, specs: Sequence[TensorSpec], batch_sizes: Sequence[int]) -> tuple[int, ...]:
        """The batch sizes to check: the file's own, else those the model can take."""
        return (self.file.rows,) if self.file is not None else feasible_batches(specs, batch_sizes)

    def feeds(self, specs: Sequence[TensorSpec], batch: int, seed: int) -> dict[str, np.ndarray]:
        """The inputs for one batch."""
        if self.file is not None:
            return self.file.feeds(specs)
        return make_feeds(specs, batch, seed, self.generator, self.ranges)
