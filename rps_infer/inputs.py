"""Inputs for a model: generated from its input specs by a named generator.

``rps-positions``: realistic positions of the card game for an ``[N, 81]`` float input;
``digits``: rows of the digits test split; ``uniform``: seeded values in [0, 1).
Without a name the generator is chosen by shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rps_infer.game import FEATURE_COUNT, realistic_positions
from rps_infer.tensors import TensorSpec

INPUT_GENERATORS = ("rps-positions", "uniform", "digits")


def make_feeds(specs: Sequence[TensorSpec], batch: int, seed: int = 0,
               generator: str | None = None) -> dict[str, np.ndarray]:
    """Inputs for ``specs`` at ``batch``: realistic RPS positions for a [N, 81] float32
    input (``rps-positions``), rows of the digits test split (``digits``, from row
    ``seed``), else seeded uniform values in [0, 1) (``uniform``)."""
    feeds = {}
    for i, spec in enumerate(specs):
        shape = (batch, *(d if d is not None else 1 for d in spec.shape[1:]))
        chosen = generator or ("rps-positions" if shape[1:] == (FEATURE_COUNT,) else "uniform")
        if chosen == "rps-positions":
            feeds[spec.name] = realistic_positions(batch, seed + i).astype(spec.dtype)
        elif chosen == "digits":
            from rps_infer.nets.digits import digit_rows

            feeds[spec.name] = digit_rows(batch, offset=seed + i).astype(spec.dtype)
        elif chosen == "uniform":
            feeds[spec.name] = np.random.default_rng(seed + i).random(shape).astype(spec.dtype)
        else:
            raise ValueError(f"unknown input generator {chosen!r}; known: {INPUT_GENERATORS}")
    return feeds
