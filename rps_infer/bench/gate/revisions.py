"""Git revisions as source trees the A/B gate can run: resolve, materialise, share models.

A revision is materialised read-only outside the working tree with ``git archive``
into ``$RPS_INFER_TREES`` (default ``<tmp>/rps-infer-trees``), one folder per commit,
reused by later runs. Its source files are made read-only; ``models/build/`` stays
writable, for the zoo the revision builds with its own recipe. When the recipe files
(:data:`RECIPE_PATHS`) are byte-identical in both trees, the head's built models are
shared (copied) instead of building them again; the revision's own zoo still checks
they are up to date.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rps_infer.errors import RevisionError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent  # the source checkout this rps_infer lives in
# What defines the zoo's built models: manifest, sources, nets, converters.
RECIPE_PATHS = ("models/zoo.toml", "fixtures", "rps_infer/nets", "rps_infer/convert", "rps_infer/formats",
                "rps_infer/families", "rps_infer/zoo.py")
COMPLETE = ".rps-infer-tree"  # written last: a folder without it is an interrupted extraction


@dataclass(frozen=True)
class Tree:
    """A source tree whose ``rps_infer`` a worker imports: a revision or the working tree."""

    path: Path
    commit: str | None  # None: the working tree, uncommitted changes included
    label: str  # "base" or "head"

    def describe(self) -> str:
        """``abc1234`` or ``working tree``."""
        return self.commit[:10] if self.commit else "working tree"


def git(root: Path, *args: str, binary: bool = False) -> str | bytes:
    """Run git in ``root``; a failure is a :class:`RevisionError` with git's message."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except OSError as exc:
        raise RevisionError(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RevisionError(f"git {' '.join(args)}: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc.stdout if binary else proc.stdout.decode().strip()


def has_history(root: Path) -> bool:
    """Whether ``root`` is a git checkout with at least one commit."""
    try:
        git(root, "rev-parse", "--verify", "HEAD")
    except RevisionError:
        return False
    return True


def resolve(root: Path, rev: str) -> str:
    """The full commit id of ``rev``, or an error saying how to get it."""
    try:
        return str(git(root, "rev-parse", "--verify", f"{rev}^{{commit}}"))
    except RevisionError:
        shallow = git(root, "rev-parse", "--is-shallow-repository") == "true"
        hint = ("this clone is shallow: run `git fetch --unshallow`" if shallow else
                "fetch it, or re-record the baseline with `make baseline`")
        raise RevisionError(f"revision {rev} is not in this clone ({hint})") from None


def commit_time(root: Path, commit: str) -> int:
    """Committer time of ``commit`` (seconds since the epoch)."""
    return int(git(root, "log", "-1", "--format=%ct", commit))


def dirty_files(root: Path) -> list[str]:
    """``git status --porcelain`` lines: uncommitted changes and untracked files."""
    return [line for line in str(git(root, "status", "--porcelain")).splitlines() if line.strip()]


def trees_root() -> Path:
    """Where materialised revisions are kept."""
    return Path(os.environ.get("RPS_INFER_TREES") or Path(tempfile.gettempdir()) / "rps-infer-trees")


def materialise(root: Path, commit: str, label: str = "base") -> Tree:
    """``commit`` of the repository at ``root`` as a read-only source tree (cached)."""
    target = trees_root() / commit
    if (target / COMPLETE).is_file():
        return Tree(target, commit, label)
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = git(root, "archive", "--format=tar", commit, binary=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:10]}.", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        for path in staging.rglob("*"):
            if path.is_file() and not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        (staging / "models" / "build").mkdir(parents=True, exist_ok=True)
        (staging / COMPLETE).write_text(commit + "\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # another run materialised it meanwhile
            if not (target / COMPLETE).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Tree(target, commit, label)


def recipe_digest(tree: Path) -> str:
    """A digest of the files that define the zoo's built models (paths and contents)."""
    digest = hashlib.sha256()
    for rel in RECIPE_PATHS:
        top = tree / rel
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in files:
            if "__pycache__" in path.parts or not path.exists():
                digest.update(f"missing {rel}\n".encode())
                continue
            digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def share_models(head: Path, base: Path) -> bool:
    """Hard-link the head's built models into the base tree when both recipes are identical
    and the base has built nothing yet. Returns whether anything was shared."""
    source, target = head / "models" / "build", base / "models" / "build"
    if not source.is_dir() or any(target.iterdir()) or recipe_digest(head) != recipe_digest(base):
        return False

    # Plain copies, dated now: the base's own zoo compares them with its sources, which
    # carry the base commit's date, and the recipe is known to be the same.
    shutil.copytree(source, target, copy_function=shutil.copy, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".*"))  # not the temp files of a build in progress
    return True


def file_at(root: Path, commit: str, path: Path) -> bytes | None:
    """The bytes of ``path`` (a file in the repository at ``root``) in revision ``commit``, or None
    when that revision has no such file."""
    top = Path(str(git(root, "rev-parse", "--show-toplevel")))
    relative = Path(path).resolve().relative_to(top.resolve())
    try:
        return git(top, "show", f"{commit}:{relative.as_posix()}", binary=True)
    except RevisionError:
        return None
