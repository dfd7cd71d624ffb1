"""A user's own repository, for the end-to-end test of the harness (tests/test_user_repo.py) and
the gate's detection power on it (scripts/gate_power.py): a PyTorch network of the user's
(``mynet.Net``), its seeded checkpoint and its ONNX export, committed on ``main``; and the
planted slowdown: the same function with a busy-wait of a fraction of each call's own time in
the user's ``forward``."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

MYNET = '''"""A small image classifier: two convolutions and a pooled linear head (10 classes)."""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Linear(2 * width, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(image).mean(dim=(2, 3)))
'''
FORWARD = "        return self.head(self.conv(image).mean(dim=(2, 3)))"
HINTS = ("--torch-model", "mynet:Net", "--input-shape", "image=1x3x32x32")


def slower(fraction: float) -> str:
    """``mynet.py`` computing the same function, ``fraction`` of each call's own time slower."""
    return MYNET.replace(FORWARD, f'''        import time  # planted slowdown

        start = time.perf_counter()
        out = self.head(self.conv(image).mean(dim=(2, 3)))
        end = time.perf_counter() + {fraction!r} * (time.perf_counter() - start)
        while time.perf_counter() < end:
            pass
        return out''')


def git(repo: Path, *args: str) -> str:
    """git in ``repo`` with an identity of its own."""
    return subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@u", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def export(repo: Path, env: Mapping[str, str], checkpoint: str, onnx: str, *extra: str) -> None:
    """``rps-infer convert`` the checkpoint to ONNX (the legacy exporter: seconds, not tens)."""
    converted = subprocess.run(["rps-infer", "convert", checkpoint, *HINTS, *extra, "--to", "onnx", "--exporter",
                                "legacy", "--out", onnx], cwd=repo, env=dict(env), capture_output=True, text=True)
    if converted.returncode != 0:
        raise AssertionError(f"rps-infer convert failed: {converted.stderr}")


def make_user_repo(repo: Path, env: Mapping[str, str]) -> str:
    """mynet.py, checkpoint.pth and model.onnx committed on ``main`` of a new repository at
    ``repo`` (``env``: where ``python`` and ``rps-infer`` are); returns the commit."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "mynet.py").write_text(MYNET)
    (repo / "pyproject.toml").write_text('[project]\nname = "my-classifier"\nversion = "1.0"\n')
    (repo / ".gitignore").write_text("__pycache__/\n")
    seeded = "import torch, mynet; torch.manual_seed(0); torch.save(mynet.Net().state_dict(), 'checkpoint.pth')"
    subprocess.run(["python", "-c", seeded], cwd=repo, env=dict(env), check=True, capture_output=True)
    export(repo, env, "checkpoint.pth", "model.onnx")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "my classifier")
    return git(repo, "rev-parse", "HEAD")
