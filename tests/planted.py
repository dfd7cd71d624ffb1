"""Planted slowdowns in a throwaway git repository: the latency gate's proof material.

:func:`throwaway_repo` copies the working tree (tracked and untracked, not ignored files,
with their dates) into a new repository and commits it (commit A); its built models are
copied too, so nothing is rebuilt. :func:`plant` then changes real code and commits it
(commit B): a busy-wait in the ONNX Runtime backend's hot path worth ``fraction`` of each
call's own time, a fixed busy-wait in the NeuralService ``Predict`` handler, and/or a load
generator that adds time to every call it records.
Used by ``tests/test_gate_ab.py`` and ``scripts/gate_power.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ONNXRT = "rps_infer/backends/onnxrt.py"
SERVICE = "rps_infer/serving/service.py"
GENERATOR = "rps_infer/bench/loadgen/generator.py"
# The lines the plants replace; a test fails loudly if a refactor moves them.
ONNXRT_HOT = "        return dict(zip(self._output_list, self._run(self._output_list, feeds, None)))  # noqa: B905\n"
RECORD_HOT = "        records.append((t1 - begin, t1 - t0, code))\n"
PREDICT_HOT = "        x, model_type = wire.decode_predict(data)\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def throwaway_repo(dest: Path, source: Path = REPO) -> str:
    """A new repository at ``dest`` holding ``source``'s working tree as one commit; returns its id."""
    files = _git(source, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for rel in filter(None, files):
        src = source / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if (source / "models" / "build").is_dir():
        shutil.copytree(source / "models" / "build", dest / "models" / "build", ignore=shutil.ignore_patterns(".*"))
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=gate-proof", "-c", "user.email=gate@proof", "commit", "-q", "-m", "A")
    return _git(dest, "rev-parse", "HEAD")


def _replace(path: Path, old: str, new: str) -> None:
    """Replace the one line whose text (any indentation) is ``old``'s with ``new``, indented alike.

    Matching by text, not indentation, lets a plant land on a tree that already carries one
    (a branch whose last commit is itself a planted slowdown still runs the proof tests)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.strip() == old.strip()]
    if len(found) != 1:
        raise AssertionError(f"{path}: the line to plant into was not found once: {old!r}")
    i = found[0]
    shift = len(lines[i]) - len(lines[i].lstrip()) - (len(old) - len(old.lstrip()))
    lines[i] = "".join(" " * shift + line if line.strip() else line for line in new.splitlines(keepends=True))
    path.write_text("".join(lines), encoding="utf-8")


def plant(repo: Path, *, backend_fraction: float = 0.0, predict_seconds: float = 0.0, record_fraction: float = 0.0,
          message: str = "B") -> str:
    """Commit a slowdown on top of ``repo``'s HEAD; returns the new commit id."""
    if backend_fraction:
        _replace(repo / ONNXRT, ONNXRT_HOT, (
            "        import time as _t  # planted slowdown\n"
            "        _start = _t.perf_counter()\n"
            "        try:\n"
            "    " + ONNXRT_HOT +
            "        finally:\n"
            f"            _end = _t.perf_counter() + {backend_fraction!r} * (_t.perf_counter() - _start)\n"
            "            while _t.perf_counter() < _end:\n"
            "                pass\n"))
    if predict_seconds:
        _replace(repo / SERVICE, PREDICT_HOT, (
            "        import time as _t  # planted slowdown\n"
            f"        _end = _t.perf_counter() + {predict_seconds!r}\n"
            "        while _t.perf_counter() < _end:\n"
            "            pass\n" + PREDICT_HOT))
    if record_fraction:  # the load generator counts time that is not the call's
        _replace(repo / GENERATOR, RECORD_HOT, (
            f"        t1 += {record_fraction!r} * (t1 - t0)  # planted miscount\n" + RECORD_HOT))
    _git(repo, "-c", "user.name=gate-proof", "-c", "user.email=gate@proof", "commit", "-q", "-am", message)
    return _git(repo, "rev-parse", "HEAD")
