"""The latency gate's parts: statistics (checked against SciPy), verdicts, schemas, mode and
base selection, confirmations and relations. The gate on real runs is in test_gate_ab.py and
test_user_repo.py."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from rps_infer.bench.cases import Case
from rps_infer.bench.harness import Harness, Settings, choose_base
from rps_infer.bench.judges.baselines import load_baseline
from rps_infer.bench.judges.stats import critical_rank, log_interval, paired_ratio
from rps_infer.bench.judges.verdicts import Verdict, check_relation, judge_ab, judge_stored, judge_suite
from rps_infer.errors import ConfigError, RevisionError, RpsInferError
from rps_infer.project import GateConfig, Project, Relation

REPO = Path(__file__).resolve().parent.parent


# -- statistics -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 12, 17, 40])
def test_interval_bounds_agree_with_scipys_exact_wilcoxon_test(n):
    """Just below the lower bound SciPy's exact one-sided signed-rank test rejects 'shift <= theta'
    at 5 %; just above it does not: the interval is the test's inversion, as it must be."""
    d = np.random.default_rng(n).normal(0.1, 0.05, n)
    low = math.log(log_interval(d, confidence=0.90).low)
    below = scipy.stats.wilcoxon(d - (low - 1e-9), alternative="greater", method="exact").pvalue
    above = scipy.stats.wilcoxon(d - (low + 1e-9), alternative="greater", method="exact").pvalue
    assert below <= 0.05 < above


def test_critical_rank_of_ten_pairs_is_the_textbook_value():
    assert critical_rank(10, 0.05) == 11  # tables: T = 10 at one-sided 5 %, n = 10
    assert critical_rank(4, 0.05) == 0  # 4 pairs cannot reach 95 %


def test_paired_ratio_finds_a_ten_percent_shift_and_shrugs_off_outlying_pairs():
    rng = np.random.default_rng(0)
    base = 10e-6 * np.exp(rng.normal(0, 0.01, 40))
    head = base * 1.10 * np.exp(rng.normal(0, 0.01, 40))
    head[:4] *= 2.0  # four pairs caught by a noisy moment on the head's side
    iv = paired_ratio(head, base)
    assert 1.08 < iv.low < iv.ratio < iv.high < 1.13
    same = paired_ratio(base * np.exp(rng.normal(0, 0.01, 40)), base)
    assert same.low < 1.0 < same.high


def test_paired_ratio_refuses_unequal_series():
    with pytest.raises(ValueError, match="equal-length"):
        paired_ratio(np.ones(5), np.ones(4))


# -- verdicts ---------------------------------------------------------------------------------
def _iv(ratio, low, high):
    from rps_infer.bench.judges.stats import Interval

    return Interval(ratio, low, high, 12, 0.9)


def test_ab_verdict_follows_the_lower_bound():
    assert judge_ab("c", "inprocess", _iv(1.10, 1.06, 1.14), 1.0, 1.1, 0.05).verdict is Verdict.REGRESSION
    assert judge_ab("c", "inprocess", _iv(1.10, 1.04, 1.14), 1.0, 1.1, 0.05).verdict is Verdict.OK
    assert judge_ab("c", "inprocess", _iv(0.80, 0.75, 0.85), 1.0, 0.8, 0.05).verdict is Verdict.FASTER
    assert judge_ab("c", "reference", _iv(3.0, 2.9, 3.1), 1.0, 3.0, math.inf).verdict is Verdict.REPORTED
    assert judge_ab("c", "calibration", _iv(3.0, 2.9, 3.1), 1.0, 3.0, math.inf).verdict is Verdict.CONTROL
    assert Verdict.REGRESSION.fails and not Verdict.FASTER.fails


def test_stored_verdict_needs_median_and_fastest_round_beyond_the_allowance():
    assert judge_stored("c", "inprocess", 20e-6, 18e-6, 10e-6, 9e-6, 0.5).verdict is Verdict.REGRESSION
    noisy = judge_stored("c", "inprocess", 20e-6, 9.5e-6, 10e-6, 9e-6, 0.5)
    assert noisy.verdict is Verdict.OK and "noise" in noisy.note
    assert judge_stored("c", "inprocess", 1.0, 1.0, None, None, 0.5).verdict is Verdict.NO_BASELINE


def test_suite_verdict_is_the_geometric_mean_per_block_pair():
    rng = np.random.default_rng(1)
    slow = [np.log(1.08) + rng.normal(0, 0.01, 12) for _ in range(6)]
    verdict = judge_suite(slow, limit=0.05, confidence=0.9)
    assert verdict.fails and verdict.cases == 6 and "latency regression: suite" in verdict.line()
    fine = judge_suite([rng.normal(0, 0.01, 12) for _ in range(6)], limit=0.05, confidence=0.9)
    assert not fine.fails
    assert judge_suite([np.zeros(12)], 0.05, 0.9) is None  # one case is no suite


def test_relations_are_judged_once_both_cases_ran():
    rule = Relation(faster="ort", than="eager", by=2.0)
    assert check_relation(rule, {"ort": 3e-3}) is None
    line, holds = check_relation(rule, {"ort": 3e-3, "eager": 5e-3})
    assert not holds and "1.67x faster" in line and "required 2x" in line
    assert check_relation(rule, {"ort": 3e-3, "eager": 19e-3})[1]


# -- schemas ----------------------------------------------------------------------------------
def _pyproject(tmp_path, text):
    (tmp_path / "pyproject.toml").write_text(f"[tool.rps_infer.gate]\n{text}\n")
    return tmp_path


def load_gate_config(root: Path) -> GateConfig:
    return Project.find(root).config.gate


def test_gate_config_of_this_project_loads_and_keeps_its_relation():
    config = load_gate_config(REPO)
    assert config.threshold("inprocess") < 0.10 and config.threshold("grpc") < 0.15
    assert math.isinf(config.threshold("reference"))
    assert [r.faster for r in config.relations] == ["test_latency[unet-ci-onnxrt-cpu-b1]"]


@pytest.mark.parametrize(("text", "named"), [
    ("blockz = 12", "blockz"),
    ("thresholds = { inproces = 0.05 }", "thresholds.inproces"),
    ("thresholds = { grpc = -1.0 }", "thresholds.grpc"),
    ("blocks = 3", "blocks"),
    ('relations = [{ faster = "a", than = "b", by = 2.0, extra = 1 }]', "relations.0.extra"),
])
def test_a_bad_gate_config_is_one_line_naming_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named) as info:
        load_gate_config(_pyproject(tmp_path, text))
    assert "\n" not in str(info.value)


def _baseline(path: Path, **overrides) -> Path:
    data = {"schema": 2, "runner_class": "r", "commit": "a" * 40, "recorded_at": "2026-12-02T00:00:00+00:00",
            "repetitions": 1, "machine": {}, "spread_by_group": {"inprocess": {"max_min_spread": 0.3}},
            "cases": {"x": {"group": "inprocess", "median": 1e-5, "min": 9e-6, "runs": [1e-5], "min_runs": [9e-6],
                            "spread": 0.0, "min_spread": 0.0}}}
    data.update(overrides)
    path.write_text(json.dumps(data))
    return path


def test_baseline_schema_is_validated_on_load(tmp_path):
    good = load_baseline(_baseline(tmp_path / "good.json"))
    assert good.cases["x"].median == 1e-5 and good.stored_threshold("inprocess") == 0.3
    with pytest.raises(ConfigError, match=r"'schema': expected 2 .*rps-infer baseline.*found none"):
        load_baseline(_baseline(tmp_path / "old.json", schema=None))
    with pytest.raises(ConfigError, match="commit"):
        load_baseline(_baseline(tmp_path / "c.json", commit="HEAD"))
    with pytest.raises(ConfigError, match=r"cases\.x\.median"):
        load_baseline(_baseline(tmp_path / "m.json", cases={"x": {"group": "inprocess", "median": -1}}))


def test_committed_baselines_follow_the_schema_and_name_commits_of_this_history():
    files = sorted((REPO / "benchmarks" / "baselines").glob("*.json"))
    assert files
    for path in files:
        baseline = load_baseline(path)
        subprocess.run(["git", "cat-file", "-e", f"{baseline.commit}^{{commit}}"], cwd=REPO, check=True)


# -- mode and base selection --------------------------------------------------------------------
def _git_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    (repo / "benchmarks" / "baselines").mkdir(parents=True)
    (repo / "f.txt").write_text("1")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                         text=True).stdout.strip()
    return repo, sha


def _gate(repo: Path, config: GateConfig | None = None, **settings) -> Harness:
    return Harness(Project.find(repo), Settings(gate=True, runner_class=settings.pop("runner_class", "r"), **settings),
                   config)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_a_checkout_without_history_gates_in_stored_mode_and_says_why(tmp_path):
    gate = _gate(tmp_path)
    assert gate.mode == "stored" and "no git history" in gate.notices[0]
    assert "nothing can be compared" in gate.notices[0]
    with pytest.raises(RevisionError, match="needs git history"):
        _gate(tmp_path, mode="ab")
    assert gate.finish()  # nothing compared: the run fails


def test_the_base_is_the_runner_class_baseline_commit_else_the_newest(tmp_path):
    repo, sha = _git_repo(tmp_path)
    _baseline(repo / "benchmarks" / "baselines" / "other.json", commit=sha)
    gate = _gate(repo, runner_class="mine")
    assert gate.mode == "ab" and gate.base_commit == sha and "newest baseline" in gate.notices[0]
    _baseline(repo / "benchmarks" / "baselines" / "mine.json", commit=sha)
    assert "the baseline of mine" in _gate(repo, runner_class="mine").notices[0]
    assert _gate(repo, base="HEAD", runner_class="x").base_commit == sha


def test_the_baselines_folder_comes_from_the_project_settings(tmp_path):
    repo, sha = _git_repo(tmp_path)
    (repo / "perf").mkdir()
    _baseline(repo / "perf" / "r.json", commit=sha)
    (repo / "rps_infer.toml").write_text('baselines = "perf"\n')
    assert "the baseline of r" in _gate(repo).notices[0]


def test_in_a_pull_request_the_base_is_the_merge_base_with_its_target(tmp_path):
    repo, first = _git_repo(tmp_path)
    _git(repo, "branch", "-M", "main")
    _git(repo, "checkout", "-qb", "feature")
    (repo / "f.txt").write_text("2")
    _git(repo, "commit", "-qam", "b")
    _baseline(repo / "benchmarks" / "baselines" / "r.json", commit="c" * 40)  # not consulted in a pull request
    commit, source = choose_base(Project.find(repo), "r", None, env={"GITHUB_BASE_REF": "main"})
    assert commit == first and "merge-base with main (pull request into main)" in source


def test_without_a_baseline_the_base_is_the_merge_base_else_heads_parent(tmp_path):
    repo, first = _git_repo(tmp_path)
    _git(repo, "branch", "-M", "main")
    (repo / "f.txt").write_text("2")
    _git(repo, "commit", "-qam", "b")
    on_main = choose_base(Project.find(repo), "r", None, env={})
    assert on_main == (first, "HEAD's parent (no baseline; HEAD is on main)")
    second = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-qb", "feature")
    (repo / "f.txt").write_text("3")
    _git(repo, "commit", "-qam", "c")
    assert choose_base(Project.find(repo), "r", None, env={}) == (second, "the merge-base with main (no baseline)")


def test_a_base_that_is_not_in_the_clone_fails_with_how_to_fix_it(tmp_path):
    repo, _ = _git_repo(tmp_path)
    _baseline(repo / "benchmarks" / "baselines" / "r.json", commit="b" * 40)
    with pytest.raises(RevisionError, match=r"not in this clone .*rps-infer baseline"):
        _gate(repo)
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    with pytest.raises(RevisionError, match="git fetch --unshallow"):
        _gate(shallow, base="b" * 40)
    fallback = _gate(repo, allow_missing_base=True)
    assert fallback.mode == "stored" and "--gate-allow-missing-base" in fallback.notices[0]


def test_a_single_commit_without_a_baseline_names_the_fixes(tmp_path):
    repo, _ = _git_repo(tmp_path)
    with pytest.raises(RevisionError, match=r"--gate-base REV.*rps-infer baseline"):
        _gate(repo)


def test_rps_infer_baseline_refuses_a_dirty_tree_saying_why(tmp_path):
    from rps_infer.bench.baseline import record

    repo, _ = _git_repo(tmp_path)
    (repo / "uncommitted.py").write_text("x = 1\n")
    with pytest.raises(RpsInferError, match=r"refusing a dirty tree.*names the commit it measured"):
        record(Project.find(repo), repetitions=1)
    assert list((repo / "benchmarks" / "baselines").iterdir()) == []


class _FakeSession:
    """Stands in for an ABSession: every look returns the head/base ratio it is given."""

    def __init__(self, looks: list[float]) -> None:
        self.looks = looks
        self.fresh_sessions = 0

    def measure(self, name, case, light=False):
        from rps_infer.bench.judges.stats import paired_ratio
        from rps_infer.bench.runners.ab import ABResult

        rng = np.random.default_rng(len(self.looks))
        base = 10e-6 * np.exp(rng.normal(0, 0.002, 40))
        head = base * self.looks.pop(0) * np.exp(rng.normal(0, 0.002, 40))
        return ABResult(name, "compared", base=list(base), head=list(head), interval=paired_ratio(head, base))

    def measure_pair(self, name, faster, than):
        # the "head" side is the faster case: its time over the other's is 1 / speed-up
        return self.measure(name, faster)

    def fresh(self):
        self.fresh_sessions += 1
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.mark.parametrize(("looks", "verdict", "note"), [
    ([1.25, 1.24], Verdict.REGRESSION, "confirmed by fresh workers; first look x1.25"),
    ([1.08, 1.00], Verdict.OK, "flagged, not confirmed by fresh workers: x1.00"),
    ([1.00], Verdict.OK, ""),
])
def test_a_flagged_case_fails_only_when_fresh_workers_confirm_it(tmp_path, looks, verdict, note):
    repo, _ = _git_repo(tmp_path)
    gate = _gate(repo, base="HEAD")
    gate.ab._session = session = _FakeSession(list(looks))
    measured = gate.measure(Case("test_latency[x]", "inprocess", {"kind": "latency"}))
    assert measured.row.verdict is verdict and note in measured.row.note
    assert bool(measured.failures) is (verdict is Verdict.REGRESSION)
    assert session.fresh_sessions == len(looks) - 1 and [r.case for r in gate.judge.rows] == ["test_latency[x]"]


@pytest.mark.parametrize(("speedups", "holds", "note"), [
    ([3.9], True, "their own runs' medians: 1.08x"),
    ([1.3, 3.8], True, "not confirmed by fresh workers, first look 1.30x"),
    ([1.3, 1.2], False, "confirmed by fresh workers, first look 1.30x"),
])
def test_a_relation_is_judged_side_by_side_not_on_medians_taken_apart(tmp_path, speedups, holds, note):
    # The medians of the two cases' own runs say 1.08x (what a drifting VM made of a 3.8x
    # relation in CI); the verdict is the interleaved look's, and a TOO SLOW needs fresh workers.
    repo, _ = _git_repo(tmp_path)
    rule = Relation(faster="ort", than="eager", by=2.0)
    gate = _gate(repo, GateConfig(relations=[rule]), base="HEAD")
    gate.ab._session = session = _FakeSession([1 / s for s in speedups])
    gate.ab._cases = {"ort": {"kind": "latency"}, "eager": {"kind": "latency"}}
    gate.judge.medians = {"ort": 10e-3, "eager": 10.8e-3}
    line, ok = gate.ab.relation(rule)
    assert ok is holds and note in line
    assert f"{speedups[-1]:.2f}x" in line and "side by side" in line
    assert session.fresh_sessions == len(speedups) - 1
    assert gate.judge.completed_relations("unrelated") == []


def test_a_plant_lands_on_a_tree_that_already_carries_one(tmp_path):
    # A branch whose last commit is itself a planted slowdown must still run the proof tests.
    from tests.planted import ONNXRT, REPO, SERVICE, plant

    before = {}
    for rel in (ONNXRT, SERVICE):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        before[rel] = (REPO / rel).read_text(encoding="utf-8")
        (tmp_path / rel).write_text(before[rel], encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "A"], cwd=tmp_path, check=True)
    for _ in range(2):
        plant(tmp_path, backend_fraction=0.25, predict_seconds=1e-4)
    for rel in (ONNXRT, SERVICE):
        text = (tmp_path / rel).read_text(encoding="utf-8")
        compile(text, rel, "exec")
        assert text.count("# planted slowdown") == before[rel].count("# planted slowdown") + 2
