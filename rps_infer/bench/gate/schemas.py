"""Schemas of the latency gate's inputs, validated on load with one mechanism (pydantic).

- :class:`GateConfig`: ``[tool.rps_infer.gate]`` in ``pyproject.toml``; an unknown key or
  group is an error naming it.
- :class:`BaselineFile`: ``benchmarks/baselines/<runner-class>.json``, versioned by
  ``schema``; a file of another version is refused with what to do.

Both go through the project's one schema mechanism (:mod:`rps_infer.schemas`).
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rps_infer.errors import ConfigError
from rps_infer.schemas import Strict, validated

BASELINE_SCHEMA = 2
GROUPS = ("inprocess", "grpc", "reference", "calibration")
Group = Literal["inprocess", "grpc", "reference", "calibration"]
Fraction = Annotated[float, Field(ge=0.0)]  # a slowdown allowance: 0.05 = 5 %; inf = never fails

# A/B thresholds: a case fails when the lower confidence bound of head/base exceeds 1 + t.
# Set from the A/A and planted-slowdown runs in benchmarks/README.md ("Detection power").
DEFAULT_THRESHOLDS: dict[str, float] = {"inprocess": 0.05, "grpc": 0.07, "reference": math.inf,
                                        "calibration": math.inf}

class Relation(Strict):
    """``faster`` must be at least ``by`` times faster than ``than`` (medians of one run)."""

    faster: str
    than: str
    by: Annotated[float, Field(gt=1.0)]


class GateConfig(Strict):
    """``[tool.rps_infer.gate]``."""

    thresholds: dict[Group, Fraction] = Field(default_factory=dict)
    relations: list[Relation] = Field(default_factory=list)
    blocks: Annotated[int, Field(ge=10)] = 40  # A/B block pairs per case
    block_seconds: Annotated[float, Field(ge=0.005)] = 0.0125  # least timed time per block
    case_seconds: Annotated[float, Field(gt=0.0)] = 6.0  # a slow case gets fewer blocks (>= 10) beyond this
    interleave: Annotated[int, Field(ge=1)] = 1  # slices per side and block pair, alternating
    workers: Annotated[int, Field(ge=2)] = 2  # long-lived worker processes per tree
    pin: bool = True  # every timing worker on one CPU, the servers they start on the others
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.90  # two-sided; each bound one-sided 95 %
    suite_limit: Fraction = 0.05  # geometric mean of the in-process ratios, lower bound
    reported: list[str] = Field(default_factory=list)  # cases too noisy to gate: reported, never failed

    def threshold(self, group: str) -> float:
        """The allowed slowdown of ``group`` (defaults for groups the file leaves out)."""
        return {**DEFAULT_THRESHOLDS, **self.thresholds}.get(group, DEFAULT_THRESHOLDS["inprocess"])


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


def load_gate_config(rootdir: Path) -> GateConfig:
    """``[tool.rps_infer.gate]`` of ``rootdir/pyproject.toml`` (defaults where there is none)."""
    pyproject = rootdir / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text(encoding="utf-8")) if pyproject.is_file() else {}
    table = data.get("tool", {}).get("rps_infer", {}).get("gate", {})
    return validated(GateConfig, table, pyproject, "tool.rps_infer.gate")


def load_baseline(path: Path) -> BaselineFile:
    """Read and validate a baseline file; another schema version gets a line saying what to do."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(path, "<file>", "a readable baseline (JSON)", str(exc)) from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        found = (data.get("schema") if isinstance(data, dict) else type(data).__name__) or "none"
        raise ConfigError(path, "schema", f"{BASELINE_SCHEMA} (re-record it with `make baseline` on a clean "
                          "checkout)", str(found))
    return validated(BaselineFile, data, path)
