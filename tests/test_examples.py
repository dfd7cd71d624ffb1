"""The bring-your-own-model example, run as its README says, in a copy of its folder: checkpoint,
convert, verify (pass; a planted bug fails), bench, the user's pytest file, and the user's
latency gate A/B against a revision of their model file (same model passes, a slower one fails)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "user_cnn"
HINTS = ["--torch-model", "mynet:Net", "--torch-kwargs", '{"width": 16}', "--input-shape", "image=1x6x64x64",
         "--input-shape", "audio=1x32x16x16"]


def _run(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(folder, "-m", "rps_infer", *args)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    """The example folder with its checkpoint, inputs and ONNX export, committed to a git repository."""
    folder = tmp_path_factory.mktemp("user") / "user_cnn"
    skip = shutil.ignore_patterns("__pycache__", "*.onnx", "*.tar", "*.npz", ".gitignore")  # the user commits them
    shutil.copytree(EXAMPLE, folder, ignore=skip)
    assert _run(folder, "make_checkpoint.py").returncode == 0
    converted = _cli(folder, "convert", "checkpoint.pth.tar", *HINTS, "--to", "onnx", "--out", "model.onnx")
    assert converted.returncode == 0, converted.stderr
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", "the model")
    return folder


@pytest.mark.slow
def test_verify_passes_on_the_export_and_fails_on_a_planted_bug(user):
    ok = _cli(user, "verify", "checkpoint.pth.tar", "model.onnx", *HINTS, "--inputs", "mine.npz")
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.stdout + ok.stderr
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(user / "model.onnx"))
    conv = next(i for i in model.graph.initializer if len(i.dims) == 4)
    conv.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(conv) * np.float32(1.01), conv.name))
    onnx.save(model, str(user / "planted.onnx"))
    bad = _cli(user, "verify", "checkpoint.pth.tar", "planted.onnx", *HINTS, "--inputs", "mine.npz")
    assert bad.returncode == 1 and "FAIL" in bad.stdout


@pytest.mark.slow
def test_bench_writes_a_report_for_the_users_file(user, tmp_path):
    run = _cli(user, "bench", "model.onnx", "--batch-sizes", "1", "--budget", "0.1", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    (folder,) = tmp_path.iterdir()
    assert json.loads((folder / "report.json").read_text())["rows"][0]["backend"] == "onnxrt-cpu"


@pytest.mark.slow
def test_the_users_pytest_file_passes_and_its_gate_catches_a_slower_model(user):
    # The same file passing A/A through the same workers: tests/test_user_repo.py (the declared suite).
    plain = _run(user, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_model.py")
    assert plain.returncode == 0, plain.stdout[-2000:]
    import torch

    sys.path.insert(0, str(user))
    try:
        from mynet import Net
    finally:
        sys.path.remove(str(user))
    torch.save({"state_dict": Net(width=32).state_dict()}, user / "wide.pth")  # twice as wide: ~4x the work
    wide = _cli(user, "convert", "wide.pth", *HINTS[:2], "--torch-kwargs", '{"width": 32}', *HINTS[4:], "--to",
                "onnx", "--exporter", "legacy", "--out", "model.onnx")
    try:
        assert wide.returncode == 0, wide.stderr
        slower = _run(user, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_model.py", "-k", "latency",
                      "--gate", "--gate-base", "HEAD")
        found = re.search(r"latency regression: test_onnx_latency_at_batch_1 x(\d+\.\d+)", slower.stdout)
        assert slower.returncode == 1 and found and float(found.group(1)) > 1.5, slower.stdout[-3000:]
        print(f"the twice-as-wide network: x{found.group(1)}")
    finally:
        _git(user, "checkout", "model.onnx")  # the committed export, for the other tests


@pytest.mark.slow
def test_the_shipped_suite_runs_on_the_users_zoo(user):
    run = _run(user, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "rps_infer.benchmarks", "--zoo",
               "my_zoo.toml", "-k", "test_latency or test_parity", "--benchmark-disable")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "8 passed" in run.stdout, run.stdout[-1000:]
