"""The harness in a user's own repository, exactly as docs/use-in-your-repository.md tells it.

A throwaway repository outside this checkout holds a user's PyTorch network (``mynet.Net``),
its checkpoint and its ONNX export. rps_infer is built into a wheel and pip-installed into a
virtual environment of its own (not on ``PYTHONPATH``, no editable finder), so nothing can
lean on this checkout. Then every command of the page runs, in its order, word for word:

- ``rps-infer init``, then the declared suite passes parity (``pytest tests/test_models.py``);
- a pull request (the CPU job's gate command line of the generated workflow, with
  ``GITHUB_BASE_REF`` as GitHub sets it, and no baseline yet) whose commit makes the user's
  own ``forward`` 50 % slower, scales one convolution of the ONNX file and declares a new
  model fails: the slower case as a regression naming the base commit, the ONNX case on
  parity naming the layer, the new model reported ``new``;
- ``rps-infer baseline`` records the machine's numbers; ``rps-infer gate`` on the unchanged
  tree (A/A against the baseline's commit) passes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.user_repo import git, make_user_repo, slower

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "use-in-your-repository.md"


def doc_steps() -> dict[str, list[str]]:
    """The page's commands: each ``<!-- step: NAME -->`` and the ``sh`` block under it."""
    text = PAGE.read_text(encoding="utf-8")
    return {name: [line for line in block.strip().splitlines() if line.strip()]
            for name, block in re.findall(r"<!-- step: ([\w-]+) -->\n```sh\n(.*?)```", text, re.S)}


def _run(cwd: Path, env: dict, command: list[str] | str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, shell=isinstance(command, str), capture_output=True, text=True,
                          timeout=timeout)


def _step(repo: Path, env: dict, name: str) -> list[subprocess.CompletedProcess]:
    """Run the page's step ``name`` line by line in ``repo``; stops at the first failing line."""
    done = []
    for line in doc_steps()[name]:
        done.append(_run(repo, env, line))
        if done[-1].returncode != 0:
            break
    return done


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> dict:
    """A virtual environment with rps_infer pip-installed from a wheel of this tree; its
    dependencies are this environment's (a .pth line), not its editable rps_infer."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file() and not rel.startswith(("models/build/", "benchmarks/baselines/")):
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = (root / "dist").glob("rps_infer-*.whl")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GITHUB_BASE_REF")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", RPS_INFER_TREES=str(root / "trees"),
               GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@u", GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@u")
    where = _run(root, env, ["python", "-c", "import rps_infer; print(rps_infer.__file__)"])
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    return env


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory, user_env) -> Path:
    """The user's repository: mynet.py, checkpoint.pth and model.onnx, committed on main."""
    repo = tmp_path_factory.mktemp("user") / "repo"
    make_user_repo(repo, user_env)
    return repo


def _scale_second_convolution(path: Path, factor: float) -> str:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weight = [n for n in model.graph.node if n.op_type == "Conv"][1].input[1]
    conv = next(i for i in model.graph.initializer if i.name == weight)
    conv.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(conv) * np.float32(factor), conv.name))
    onnx.save(model, str(path))
    return conv.name


@pytest.mark.slow
def test_the_page_declares_gates_a_pull_request_records_a_baseline_and_passes_a_a(user_repo, user_env):
    repo, env = user_repo, user_env
    declared = _step(repo, env, "declare")
    assert all(p.returncode == 0 for p in declared), declared[-1].stdout + declared[-1].stderr
    suite = _step(repo, env, "suite")[0]
    assert suite.returncode == 0 and "4 passed" in suite.stdout, suite.stdout[-3000:] + suite.stderr[-2000:]
    main = git(repo, "rev-parse", "HEAD")

    # A pull request, no baseline yet: the user's forward 50 % slower, one ONNX convolution scaled, a new model.
    git(repo, "checkout", "-qb", "change")
    (repo / "mynet.py").write_text(slower(0.5))
    shutil.copy(repo / "model.onnx", repo / "second.onnx")  # a second model: the export as it was
    _scale_second_convolution(repo / "model.onnx", 1.5)
    added = _run(repo, env, ["rps-infer", "init", "second.onnx"])
    assert added.returncode == 0 and "declared second" in added.stdout, added.stdout + added.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "slower forward, a scaled convolution, a new model")
    (pull_request,) = doc_steps()["pull-request"]
    workflow = __import__("yaml").safe_load((repo / ".github" / "workflows" / "rps-infer.yml").read_text())
    gate_step = next(s for s in workflow["jobs"]["cpu"]["steps"] if s.get("name") == "parity and latency gate")
    assert pull_request == f"GITHUB_BASE_REF=main {gate_step['run']}"  # the page runs the workflow's command line
    assert workflow["jobs"]["cpu"]["steps"][0]["with"]["fetch-depth"] == 0 and "gpu" in workflow["jobs"]
    gated = _step(repo, env, "pull-request")[0]
    out = gated.stdout
    assert gated.returncode == 1, out[-4000:] + gated.stderr[-2000:]
    assert "latency regression: test_latency[model-pyt-cpu-b1]" in out and f"vs base {main[:10]}" in out, out[-4000:]
    assert "FAILED tests/test_models.py::test_latency[model-onnxrt-cpu-b1]" in out  # the summary cuts its reason
    assert "_ test_latency[model-onnxrt-cpu-b1] _" in out and "parity failed, not timed: FAIL" in out
    assert "likely cause: a scaled layer (k = 1.5): the conv.3 (Conv2d)'s weights times 1.5" in out, out[-4000:]
    verdicts = json.loads((repo / "rps-gate.json").read_text())
    rows = {r["case"]: r for r in verdicts["rows"]}
    assert verdicts["base_commit"] == main and "merge-base with main (pull request into main)" in verdicts["notices"][0]
    assert rows["test_latency[model-pyt-cpu-b1]"]["verdict"] == "REGRESSION"
    assert rows["test_latency[model-pyt-cpu-b1]"]["interval"]["low"] > 1.15
    new = rows["test_latency[second-onnxrt-cpu-b1]"]
    assert new["verdict"] == "new" and new["head"] > 0, new  # timed in the head, reported new
    assert "Traceback" not in out
    git(repo, "checkout", "-q", "main")
    (repo / "rps-gate.json").unlink()
    (repo / "rps-gate.png").unlink(missing_ok=True)

    recorded = _step(repo, env, "baseline")
    assert all(p.returncode == 0 for p in recorded), recorded[-1].stdout + recorded[-1].stderr
    (baseline,) = (repo / "benchmarks" / "baselines").glob("*.json")
    assert json.loads(baseline.read_text())["commit"] == main
    same = _step(repo, env, "gate")[0]
    assert same.returncode == 0, same.stdout[-4000:] + same.stderr[-2000:]
    assert f"A/B against {main[:10]} (the baseline of" in same.stdout
    assert re.search(r"test_latency\[model-onnxrt-cpu-b1\] .* (ok|faster) ", same.stdout), same.stdout[-3000:]
