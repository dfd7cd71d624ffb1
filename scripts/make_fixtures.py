"""Write the bundled Go JSON fixtures (seeded, so re-running reproduces them exactly).

    python scripts/make_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rps_infer.formats import gojson
from rps_infer.nets.mlp import random_weights

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def main() -> None:
    """Write fixtures/policy.json and fixtures/value.json (81 -> 64 -> 9 / 1)."""
    for seed, kind in enumerate(("policy", "value")):
        weights = random_weights(np.random.default_rng(seed), kind, hidden_size=64)
        print(gojson.write(weights, FIXTURES / f"{kind}.json"))


if __name__ == "__main__":
    main()
