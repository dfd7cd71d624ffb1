"""Git revisions as source trees the A/B gate can run: resolve, choose the base, materialise, share models.

A revision is materialised read-only outside the working tree with ``git archive`` of the
whole repository (always from its top level) into the project's trees folder, one folder
per repository and commit, reused by later runs after a check that it holds that commit's
layout. Its files are made read-only; folders stay writable, for the artifacts the
revision builds with its own recipe. When a tree carries this project's own ``rps_infer``
and the recipe files (:data:`RECIPE_PATHS`) are byte-identical in both trees, the head's
built zoo is shared (copied) instead of building it again; the revision's own zoo still
checks it is up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rps_infer.errors import RevisionError

# What defines this project's built zoo: manifest, sources, nets, converters.
RECIPE_PATHS = ("models/zoo.toml", "fixtures", "rps_infer/nets", "rps_infer/convert", "rps_infer/formats",
                "rps_infer/families", "rps_infer/zoo.py")
COMPLETE = ".rps-infer-tree"  # written last, naming repository and commit: a folder without it is unfinished


@dataclass(frozen=True)
class Tree:
    """A source tree a worker runs in: a revision or the working tree.

    ``path`` is the tree's top level, ``subdir`` the project root inside it (a worker's folder).
    """

    path: Path
    commit: str | None  # None: the working tree, uncommitted changes included
    label: str  # "base" or "head"
    subdir: Path = Path(".")

    def describe(self) -> str:
        """``abc1234`` or ``working tree``."""
        return self.commit[:10] if self.commit else "working tree"

    @property
    def cwd(self) -> Path:
        """Where a worker of this tree runs: the project root inside it."""
        return self.path / self.subdir

    @property
    def own_package(self) -> bool:
        """Whether the tree carries its own ``rps_infer`` (this project's repository): its workers
        import that, not the installed one."""
        return (self.path / "rps_infer" / "__init__.py").is_file()


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


def top_level(root: Path) -> Path:
    """The top level of the repository ``root`` lies in."""
    return Path(str(git(root, "rev-parse", "--show-toplevel"))).resolve()


def resolve(root: Path, rev: str) -> str:
    """The full commit id of ``rev``, or an error saying how to get it."""
    try:
        return str(git(root, "rev-parse", "--verify", f"{rev}^{{commit}}"))
    except RevisionError:
        shallow = git(root, "rev-parse", "--is-shallow-repository") == "true"
        hint = ("this clone is shallow: run `git fetch --unshallow` (in CI: fetch-depth: 0)" if shallow else
                "fetch it, or re-record the baseline with `rps-infer baseline`")
        raise RevisionError(f"revision {rev} is not in this clone ({hint})") from None


def commit_time(root: Path, commit: str) -> int:
    """Committer time of ``commit`` (seconds since the epoch)."""
    return int(git(root, "log", "-1", "--format=%ct", commit))


def dirty_files(root: Path) -> list[str]:
    """``git status --porcelain`` lines: uncommitted changes and untracked files."""
    return [line for line in str(git(root, "status", "--porcelain")).splitlines() if line.strip()]


def merge_base(root: Path, branch: str) -> str | None:
    """The merge-base of HEAD with ``origin/<branch>`` (else the local ``branch``), or None."""
    for ref in (f"origin/{branch}", branch):
        try:
            return str(git(root, "merge-base", "HEAD", ref))
        except RevisionError:
            continue
    return None


def default_base(root: Path, branch: str, in_pull_request: str | None) -> tuple[str, str] | None:
    """``(commit, where it came from)`` of the base a change is judged against without a
    baseline: in a pull request (``in_pull_request``: its target branch) the merge-base with
    it; else the merge-base with ``branch``, or HEAD's parent when HEAD is on that branch."""
    target = in_pull_request or branch
    found = merge_base(root, target)
    head = str(git(root, "rev-parse", "HEAD"))
    if found is not None and (found != head or in_pull_request):
        why = f"pull request into {target}" if in_pull_request else "no baseline"
        return found, f"the merge-base with {target} ({why})"
    try:
        parent = str(git(root, "rev-parse", "--verify", "HEAD~1^{commit}"))
    except RevisionError:
        return None
    return parent, f"HEAD's parent (no baseline; HEAD is on {target})"


def tree_folder(trees: Path, top: Path, commit: str) -> Path:
    """Where ``commit`` of the repository at ``top`` is materialised: keyed by both."""
    repo = hashlib.sha256(str(top.resolve()).encode()).hexdigest()[:12]
    return trees / repo / commit


def materialise(root: Path, commit: str, trees: Path, label: str = "base", subdir: Path = Path(".")) -> Tree:
    """``commit`` of the repository around ``root`` as a read-only source tree (cached)."""
    top = top_level(root)
    target = tree_folder(trees, top, commit)
    if (target / COMPLETE).is_file():
        problem = _layout_problem(top, commit, target)
        if problem is None:
            return Tree(target, commit, label, subdir)
        _discard(target, f"cached tree {target} of {commit[:10]} is not that commit's layout ({problem}); "
                 "extracted anew")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit[:10]}.", dir=target.parent))
    try:
        _extract(top, commit, staging)
        if (staging / "models" / "zoo.toml").is_file():  # this project's own zoo builds here
            (staging / "models" / "build").mkdir(parents=True, exist_ok=True)
        marker = {"repository": str(top), "commit": commit}
        (staging / COMPLETE).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # another run materialised it meanwhile
            if not (target / COMPLETE).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Tree(target, commit, label, subdir)


def _extract(top: Path, commit: str, into: Path) -> None:
    """``git archive`` of the whole of ``commit`` (run at the top level: from a subfolder git
    archives only that subfolder), streamed, every file made read-only."""
    try:
        proc = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=top, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as exc:
        raise RevisionError(f"cannot run git: {exc}") from None
    with proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            tar.extractall(into, filter="data")
        error = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RevisionError(f"git archive {commit[:10]}: {error or f'exit {proc.returncode}'}")
    for path in into.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _layout_problem(top: Path, commit: str, tree: Path) -> str | None:
    """Why the cached ``tree`` is not ``commit`` of ``top`` (None when it is): its marker names
    another repository or commit, or it lacks entries the commit has at its top level."""
    try:
        marker = json.loads((tree / COMPLETE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its marker is unreadable"
    if not isinstance(marker, dict) or marker.get("repository") != str(top) or marker.get("commit") != commit:
        return f"its marker names {marker!r}"
    names = str(git(top, "ls-tree", "--name-only", commit)).splitlines()
    missing = [n for n in names if not (tree / n).exists() and not (tree / n).is_symlink()]
    return f"it lacks {', '.join(missing[:3])}" if missing else None


def _discard(tree: Path, why: str) -> None:
    """Move a wrong cached tree aside and delete it (say so on stderr)."""
    import sys

    print(f"rps_infer gate: {why}", file=sys.stderr)
    aside = tree.with_name(f".discarded-{tree.name}-{os.getpid()}")
    tree.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)


def recipe_digest(tree: Path) -> str:
    """A digest of the files that define this project's built zoo (paths and contents)."""
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
    """Copy the head's built zoo into the base tree when both carry this project's own package
    with identical recipes and the base has built nothing yet. Returns whether anything was shared."""
    source, target = head / "models" / "build", base / "models" / "build"
    if not (head / "rps_infer").is_dir() or not source.is_dir() or not target.is_dir() or any(target.iterdir()):
        return False
    if recipe_digest(head) != recipe_digest(base):
        return False
    # Plain copies, dated now: the base's own zoo compares them with its sources, which
    # carry the base commit's date, and the recipe is known to be the same.
    shutil.copytree(source, target, copy_function=shutil.copy, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".*"))  # not the temp files of a build in progress
    return True
