"""A repository's rps_infer settings (rps_infer/project.py), the declared models they give, the
rules they add to the gate, and what `rps-infer init` writes (rps_infer/scaffold.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rps_infer.bench.cases import gate_rules, latency_name, suite_cases
from rps_infer.bench.harness import Harness, Settings
from rps_infer.bench.runners.revisions import Tree
from rps_infer.cli import main
from rps_infer.errors import ConfigError
from rps_infer.project import Project

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "fixtures" / "policy.json"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copy(POLICY, repo / "policy.json")
    return repo


def test_settings_are_found_upwards_and_their_paths_start_at_their_folder(tmp_path):
    repo = _repo(tmp_path)
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.rps_infer]\nbaselines = "perf/base"\n'
                                         '[tool.rps_infer.models.policy]\npath = "policy.json"\n')
    (repo / "sub" / "deeper").mkdir(parents=True)
    project = Project.find(repo / "sub" / "deeper")
    assert project.root == repo.resolve() and project.config_file == repo / "pyproject.toml"
    assert project.baselines_dir == repo.resolve() / "perf" / "base"
    assert project.build_dir == repo.resolve() / ".rps_infer" / "build"
    (entry,) = project.models().values()
    assert (entry.family, entry.reference, entry.backends, entry.batch_sizes, entry.ci) == \
        ("file", "file", ("numpy-cpu",), (1,), True)
    assert entry.params.path == repo / "policy.json"


def test_without_settings_the_project_is_the_git_top_level_with_the_defaults(tmp_path):
    repo = _repo(tmp_path)
    (repo / "a").mkdir()
    project = Project.find(repo / "a")
    assert project.root == repo.resolve() and project.config_file is None
    with pytest.raises(ConfigError, match=r"rps-infer init MODEL"):
        project.models()


def test_rps_infer_toml_holds_the_same_settings_at_its_top_level(tmp_path):
    repo = _repo(tmp_path)
    (repo / "rps_infer.toml").write_text('[models.p]\npath = "policy.json"\nbackends = ["onnxrt-cpu", "pyt-cpu"]\n'
                                         'batch_sizes = [1, 8]\nthreshold = 0.2\n'
                                         'relations = [{ faster = "onnxrt-cpu", than = "pyt-cpu", by = 1.5 }]\n')
    entries = Project.find(repo).models()
    cases = [c.id for c in suite_cases(entries)]
    assert cases == ["p-onnxrt-cpu-b1", "p-onnxrt-cpu-b8", "p-pyt-cpu-b1", "p-pyt-cpu-b8"]
    rules = gate_rules(Project.find(repo).config.gate, entries)
    assert rules.threshold("inprocess", latency_name("p", "pyt-cpu", 8)) == 0.2
    assert rules.threshold("inprocess", "test_latency[other]") == 0.05
    assert rules.threshold("reference", latency_name("p", "pyt-cpu", 8)) == float("inf")  # never gated
    assert [(r.faster, r.than) for r in rules.relations] == [
        (latency_name("p", "onnxrt-cpu", b), latency_name("p", "pyt-cpu", b)) for b in (1, 8)]


@pytest.mark.parametrize(("table", "named"), [
    ('[models.p]\npath = "nope.onnx"\n', "models.p.path"),
    ('[models.p]\npath = "policy.json"\nbatch_sizes = [0]\n', "models.p.batch_sizes"),
    ('[models.p]\npath = "policy.json"\ninputs = "mine.npz"\n', "models.p.inputs"),
    ('[models.p]\npath = "policy.json"\nthreshold = -1\n', "models.p.threshold"),
    ('[models.p]\npath = "policy.json"\nbackendz = ["onnxrt-cpu"]\n', "models.p"),
    ('baseline = "x"\n', "baseline"),
    ('[gate]\nblocks = 3\n', "gate.blocks"),
])
def test_a_bad_setting_is_one_line_naming_the_key(tmp_path, table, named):
    repo = _repo(tmp_path)
    (repo / "rps_infer.toml").write_text(table)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")) as info:
        Project.find(repo).models()
    assert "\n" not in str(info.value)


def test_a_go_json_model_on_onnx_runtime_is_converted_into_the_build_folder_with_parity(tmp_path):
    from rps_infer import zoo

    repo = _repo(tmp_path)
    (repo / "rps_infer.toml").write_text('[models.p]\npath = "policy.json"\nbackends = ["onnxrt-cpu", "numpy"]\n')
    (entry,) = Project.find(repo).models().values()
    assert not entry.is_built()
    reports = zoo.build([entry])
    assert reports["p"]["onnx"] and (repo / ".rps_infer" / "build" / "p" / "model.onnx").is_file()
    assert entry.is_built()
    with entry.backend("onnxrt-cpu") as backend:
        assert entry.check_parity(backend, "onnxrt-cpu", (1, 3))


def test_init_declares_a_model_and_writes_what_a_project_needs_once(tmp_path, capsys):
    repo = _repo(tmp_path)
    (repo / "pyproject.toml").write_text('[project]\nname = "mine"  # keep me\n')
    assert main(["init", str(repo / "policy.json"), "--project", str(repo), "--batch-sizes", "1,4"]) == 0
    text = (repo / "pyproject.toml").read_text()
    assert 'name = "mine"  # keep me' in text and "[tool.rps_infer.models.policy]" in text
    (entry,) = Project.find(repo).models().values()
    assert entry.batch_sizes == (1, 4) and entry.backends == ("numpy-cpu",)
    assert "from rps_infer.benchmarks.test_models import test_latency, test_parity" in \
        (repo / "tests" / "test_models.py").read_text()
    assert "fetch-depth: 0" in (repo / ".github" / "workflows" / "rps-infer.yml").read_text()
    assert (repo / ".gitignore").read_text() == ".rps_infer/\n"
    capsys.readouterr()
    (repo / "tests" / "test_models.py").write_text("# mine\n")
    shutil.copy(POLICY, repo / "other.json")
    assert main(["init", str(repo / "other.json"), "--project", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "kept (exists)" in out and (repo / "tests" / "test_models.py").read_text() == "# mine\n"
    assert set(Project.find(repo).models()) == {"policy", "other"}
    assert (repo / ".gitignore").read_text() == ".rps_infer/\n"


def test_init_refuses_a_name_taken_a_file_outside_or_a_wrong_hint_and_writes_nothing(tmp_path, capsys):
    repo = _repo(tmp_path)
    assert main(["init", str(repo / "policy.json"), "--project", str(repo)]) == 0
    before = (repo / "rps_infer.toml").read_text()
    capsys.readouterr()
    assert main(["init", str(repo / "policy.json"), "--project", str(repo)]) == 2
    assert "already declares a model 'policy'" in capsys.readouterr().err
    assert main(["init", str(POLICY), "--project", str(repo), "--name", "outside"]) == 2
    assert "lies outside the project" in capsys.readouterr().err
    assert main(["init", str(repo / "policy.json"), "--name", "p2", "--backends", "onnxrt-gpu",
                 "--project", str(repo)]) == 2
    assert "models.p2.backends" in capsys.readouterr().err
    assert (repo / "rps_infer.toml").read_text() == before


def test_cases_the_base_declares_and_the_head_does_not_are_reported_removed(tmp_path):
    repo = _repo(tmp_path)
    (repo / "rps_infer.toml").write_text('[models.p]\npath = "policy.json"\n')
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(POLICY, base / "policy.json")
    (base / "rps_infer.toml").write_text('[models.p]\npath = "policy.json"\n[models.gone]\npath = "policy.json"\n'
                                         'batch_sizes = [1, 2]\n')
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a"],
                   cwd=repo, check=True)
    harness = Harness(Project.find(repo), Settings(gate=True, base="HEAD", runner_class="r"))
    harness.ab._report_removed(Tree(base, "b" * 40, "base"))
    removed = [(r.case, r.verdict.value) for r in harness.judge.rows]
    assert removed == [("test_latency[gone-numpy-cpu-b1]", "removed"), ("test_latency[gone-numpy-cpu-b2]", "removed")]
    assert harness.judge.finish() == []  # removed cases alone neither fail nor count as "nothing compared"
