"""The load generator / independent client relation can fail: a load generator that counts
25 % more than every call took (planted in a throwaway copy of the tree) is caught."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.planted import plant, throwaway_repo

# pytest with the relation measured in one block instead of the suite's four: the planted
# 25 % showed as x1.256-1.263 in each of four blocks (the relation allows 10 %), so one block
# catches it, in 5 s of load instead of 19. Set once the test module is imported (assertions rewritten).
ONE_BLOCK = """
import sys
import pytest


class OneBlock:
    def pytest_runtest_setup(self, item):
        sys.modules[item.function.__module__].BLOCKS = 1


sys.exit(pytest.main(sys.argv[1:], plugins=[OneBlock()]))
"""


@pytest.mark.slow
def test_a_load_generator_that_miscounts_fails_the_relation(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    throwaway_repo(repo)
    plant(repo, record_fraction=0.25, message="miscount")
    run = subprocess.run([sys.executable, "-c", ONE_BLOCK, "rps_infer/benchmarks/test_loadgen.py", "--benchmark-only",
                          "-q", "-p", "no:cacheprovider"], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "the load generator's p50" in run.stdout
