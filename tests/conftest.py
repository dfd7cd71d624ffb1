"""Shared fixtures: the Go-trained files, seeded weights, a built zoo in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Exporters take about a second per example: no deadline, and CI stays derandomised.
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "neural_rps"
SHARED_FILES = sorted(SHARED.glob("*.model")) if SHARED.is_dir() else []
SKIP_SHARED = f"the Go-trained models are not here ({SHARED} is missing or has no .model files)"


def shared_params() -> list:
    """One pytest param per Go-trained file, or one skipped param saying why there are none."""
    if not SHARED_FILES:
        return [pytest.param(None, marks=pytest.mark.skip(reason=SKIP_SHARED), id="no-shared-models")]
    return [pytest.param(p, id=p.stem) for p in SHARED_FILES]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory):
    """The zoo's CI entries in a temp dir of their own (shared by the whole session): the
    checkout's models/build (built where not up to date: the suite times the same files)
    copied with their dates, so the copy is up to date too and nothing is built twice."""
    import shutil

    from rps_infer import zoo

    checkout = {name: e for name, e in zoo.load_zoo().items() if e.ci}
    zoo.build(list(checkout.values()))
    folder = tmp_path_factory.mktemp("zoo-build")
    source = next(iter(checkout.values())).build_dir
    shutil.copytree(source, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*", "*.cache"))
    entries = {name: e for name, e in zoo.load_zoo(build_dir=folder).items() if e.ci}
    assert all(e.is_built() for e in entries.values())
    return entries
