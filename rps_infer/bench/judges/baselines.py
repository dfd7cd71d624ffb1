"""Latency baselines: ``<baselines>/<runner-class>.json``, validated on load (pydantic, the
project's one schema mechanism, :mod:`rps_infer.schemas`) and versioned by ``schema``; a file
of another version is refused with what to do. Written by ``rps-infer baseline``
(:mod:`rps_infer.bench.baseline`); the A/B gate times against the commit it names, stored
mode against its numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rps_infer.errors import ConfigError
from rps_infer.project import Group
from rps_infer.schemas import validated

BASELINE_SCHEMA = 2


class BaselineCase(BaseModel):
    """One case of a baseline: median and fastest round over the runs (seconds per call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    group: Group
    median: Annotated[float, Field(gt=0.0)]
    min: Annotated[float, Field(gt=0.0)]
    runs: list[float]
    min_runs: list[float]
    spread: float
    min_spread: float


class BaselineFile(BaseModel):
    """A latency baseline: the revision measured, where, and per case its numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    schema_version: Literal[2] = Field(alias="schema")
    runner_class: str
    commit: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
    recorded_at: str
    repetitions: Annotated[int, Field(ge=1)]
    machine: dict[str, Any]
    spread_by_group: dict[str, dict[str, float]]
    cases: dict[str, BaselineCase]

    def stored_threshold(self, group: str) -> float:
        """Stored mode's allowance for ``group``: the largest spread of the fastest rounds
        between this baseline's own runs (an A/A measurement), at least 10 %."""
        spread = self.spread_by_group.get(group, {}).get("max_min_spread", 0.5)
        return math.inf if group in ("reference", "calibration") else max(0.10, spread)


def load_baseline(path: Path) -> BaselineFile:
    """Read and validate a baseline file; another schema version gets a line saying what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(path, "<file>", "a readable baseline (JSON)", str(exc)) from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        found = (data.get("schema") if isinstance(data, dict) else type(data).__name__) or "none"
        raise ConfigError(path, "schema", f"{BASELINE_SCHEMA} (re-record it with `rps-infer baseline` on a clean "
                          "checkout)", str(found))
    return validated(BaselineFile, data, path)
