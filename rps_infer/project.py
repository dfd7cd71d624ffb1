"""A repository that uses rps_infer: its settings, declared models, baselines and revision trees.

The settings are ``[tool.rps_infer]`` of ``pyproject.toml``, or the top level of
``rps_infer.toml``: the first of the two found from a folder upwards (never above the git
top level). The folder holding them is the *project root*; every path in them is relative
to it, and so is every default. Nothing here depends on where rps_infer is installed::

    [tool.rps_infer]
    models = "models/zoo.toml"        # a manifest file, or [tool.rps_infer.models.<name>] tables
    suite = ["tests/test_models.py"]  # pytest arguments that collect the declared suite
    baselines = "benchmarks/baselines"
    build = ".rps_infer/build"        # artifacts the suite builds (inline models)
    trees = "/var/cache/rps-trees"    # default: $RPS_INFER_TREES, else <tmp>/rps-infer-trees
    base_branch = "main"              # the gate's base outside a pull request, without a baseline

    [tool.rps_infer.gate]             # the latency gate (GateConfig)

A model table is a zoo table (:mod:`rps_infer.zoo`); for a user's own files ``family``
defaults to ``file``.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from rps_infer.errors import ConfigError
from rps_infer.schemas import Strict, read_toml, validated

CONFIG_FILE = "rps_infer.toml"
PYPROJECT = "pyproject.toml"
DEFAULT_SUITE = ("tests/test_models.py",)
GROUPS = ("inprocess", "grpc", "reference", "calibration")
Group = Literal["inprocess", "grpc", "reference", "calibration"]
Fraction = Annotated[float, Field(ge=0.0)]  # a slowdown allowance: 0.05 = 5 %; inf = never fails

# A/B thresholds: a case fails when the lower confidence bound of head/base exceeds 1 + t.
# Set from the A/A and planted-slowdown runs in benchmarks/README.md ("Detection power").
DEFAULT_THRESHOLDS: dict[str, float] = {"inprocess": 0.05, "grpc": 0.07, "reference": math.inf,
                                        "calibration": math.inf}


class Relation(Strict):
    """``faster`` must be at least ``by`` times faster than ``than`` (two case names)."""

    faster: str
    than: str
    by: Annotated[float, Field(gt=1.0)]


class GateConfig(Strict):
    """``[tool.rps_infer.gate]``: how the latency gate times and judges."""

    thresholds: dict[Group, Fraction] = Field(default_factory=dict)
    cases: dict[str, Fraction] = Field(default_factory=dict)  # per-case thresholds, by case name
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

    def threshold(self, group: str, case: str | None = None) -> float:
        """The allowed slowdown of ``case`` (its own, else its group's; defaults for groups the
        file leaves out). Reference and calibration cases never fail."""
        group_value = {**DEFAULT_THRESHOLDS, **self.thresholds}.get(group, DEFAULT_THRESHOLDS["inprocess"])
        if case in self.cases and math.isfinite(group_value):
            return self.cases[case]
        return group_value


class ProjectConfig(Strict):
    """``[tool.rps_infer]`` (or ``rps_infer.toml``)."""

    models: str | dict[str, Any] = Field(default_factory=dict)
    suite: list[str] = Field(default_factory=lambda: list(DEFAULT_SUITE))
    baselines: str = "benchmarks/baselines"
    build: str = ".rps_infer/build"
    trees: str | None = None
    base_branch: str = "main"
    gate: GateConfig = Field(default_factory=GateConfig)


@dataclass(frozen=True)
class Project:
    """A project: its root, the file its settings came from (None: defaults) and the settings."""

    root: Path
    config_file: Path | None
    config: ProjectConfig

    @classmethod
    def find(cls, start: str | Path | None = None) -> Project:
        """The project around ``start`` (default: the current folder): the nearest settings
        file from ``start`` up to the git top level; without one, ``start``'s git top level
        (or ``start``) with the defaults."""
        here = Path(start or Path.cwd()).resolve()
        top = git_top(here)
        for folder in (here, *here.parents):
            found = _settings_in(folder)
            if found is not None:
                path, table, prefix = found
                return cls(folder, path, validated(ProjectConfig, table, path, prefix))
            if top is not None and folder == top:
                break
        return cls(top or here, None, ProjectConfig())

    @property
    def top(self) -> Path | None:
        """The git top level the project lives in (None outside a checkout)."""
        return git_top(self.root)

    def path(self, value: str | Path) -> Path:
        """``value`` relative to the project root."""
        return (self.root / value).resolve()

    @property
    def baselines_dir(self) -> Path:
        """Where ``<runner-class>.json`` baselines live."""
        return self.path(self.config.baselines)

    @property
    def build_dir(self) -> Path:
        """Where the artifacts of inline model tables are built."""
        return self.path(self.config.build)

    @property
    def trees_dir(self) -> Path:
        """Where git revisions are extracted for the A/B gate."""
        if self.config.trees:
            return self.path(self.config.trees)
        return Path(os.environ.get("RPS_INFER_TREES") or Path(tempfile.gettempdir()) / "rps-infer-trees")

    @property
    def manifest(self) -> Path | None:
        """The model manifest file the settings name, if they name one."""
        return self.path(self.config.models) if isinstance(self.config.models, str) else None

    @property
    def where(self) -> str:
        """Where the settings came from, for messages."""
        return str(self.config_file) if self.config_file else f"{self.root} (no [tool.rps_infer]: defaults)"

    def relative_root(self) -> Path:
        """The project root relative to the git top level (``.`` at the top)."""
        top = self.top
        return self.root.relative_to(top) if top is not None else Path(".")

    def models(self, manifest: str | Path | None = None):
        """The declared models (``manifest`` overrides the settings' own): name -> ZooEntry."""
        from rps_infer import zoo

        if manifest is not None or self.manifest is not None:
            return zoo.load_zoo(manifest or self.manifest)
        tables = self.config.models
        if not tables:
            raise ConfigError(self.where, "tool.rps_infer.models", "one or more models (a manifest file or "
                              "[tool.rps_infer.models.<name>] tables; `rps-infer init MODEL` writes one)", "none")
        prefix = "tool.rps_infer.models" if self.config_file and self.config_file.name == PYPROJECT else "models"
        return zoo.load_tables(tables, self.config_file, self.root, self.build_dir, prefix=prefix,
                               default_family="file")


def _settings_in(folder: Path) -> tuple[Path, dict, str] | None:
    """(file, table, key prefix) of the settings in ``folder``, if it has any."""
    own = folder / CONFIG_FILE
    if own.is_file():
        return own, read_toml(own, "rps_infer settings"), ""
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(pyproject, "<file>", "valid TOML", str(exc)) from None
        table = data.get("tool", {}).get("rps_infer")
        if table is not None:
            return pyproject, table, "tool.rps_infer"
    return None


def git_top(folder: Path) -> Path | None:
    """The git top level of ``folder``, or None outside a checkout (or without git)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True,
                              text=True, check=False)
    except OSError:
        return None
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 and proc.stdout.strip() else None
