"""Where a report's numbers came from: the code (git commit, dirty or not) and each model
file (sha256), so two reports can be told apart when their settings look alike."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"


def source() -> dict[str, object]:
    """``{"commit": <sha>, "dirty": bool}`` of the checkout rps_infer runs from; ``"unknown"``
    for both outside a git checkout (an installed wheel) or without git."""
    try:
        commit = _git("rev-parse", "HEAD")
        # Only tracked changes under the package's tree count: reports and builds are untracked.
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    return {"commit": commit, "dirty": dirty}


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def sha256(path: Path) -> str:
    """The file's sha256 (a folder, such as a SavedModel: of its files' names and contents)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_digests(paths: Iterable[Path | None]) -> dict[str, str]:
    """``{path: sha256}`` of the model files that exist (None and missing paths are left out)."""
    return {str(p): sha256(p) for p in paths if p is not None and p.exists()}
