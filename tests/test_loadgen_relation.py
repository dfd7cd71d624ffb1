"""The load generator / independent client relation can fail: a load generator that counts
25 % more than every call took (planted in a throwaway copy of the tree) is caught."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.planted import plant, throwaway_repo


@pytest.mark.slow
def test_a_load_generator_that_miscounts_fails_the_relation(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    throwaway_repo(repo)
    plant(repo, record_fraction=0.25, message="miscount")
    run = subprocess.run([sys.executable, "-m", "pytest", "rps_infer/benchmarks/test_loadgen.py", "--benchmark-only",
                          "-q", "-p", "no:cacheprovider"], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "the load generator's p50" in run.stdout
