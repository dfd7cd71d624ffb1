"""The latency regression gate: a pytest plugin, enabled with ``--gate``.

Each benchmark's median is compared with the committed baseline of this runner
class (``benchmarks/baselines/<runner-class>.json``). A case slower than its
group's threshold is re-measured (up to twice); if its best median and its best fastest
round are both still too slow, the test fails, so
the run ends with pytest's normal summary line and a non-zero exit. A case with
no baseline is reported, not failed. A table (case, baseline, now, ratio,
verdict) is printed at the end.

Where no baseline exists for this runner class, the gate takes one of the same
architecture and core count and scales it by the calibration ratio (a bare
single-thread ``InferenceSession.run`` timed in both runs) and says so; where
none fits, every case is reported, none failed.

Thresholds per group (code defaults in-process 35 %, gRPC 60 %) are set in
``pyproject.toml`` (this project: 50 % and 80 %, from the measured spread)::

    [tool.rps_infer.gate]
    thresholds = { inprocess = 0.50, grpc = 0.80 }
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rps_infer.bench import machine

# "reference" cases (e.g. Keras model.predict) put our numbers in context; they are
# reported, never failed.
DEFAULT_THRESHOLDS = {"inprocess": 0.35, "grpc": 0.60, "calibration": 0.35, "reference": math.inf}
CALIBRATION_GROUP = "calibration"
REMEASURES = 2  # extra looks a case gets before it is called a regression
SLOWDOWN_ENV = "RPS_INFER_BENCH_SLOWDOWN"
GATE_KEY = pytest.StashKey["Gate"]()


@dataclass
class Baseline:
    """A baseline file: per case its median (seconds) and group, plus the machine it came from."""

    path: Path
    runner_class: str
    cases: dict[str, dict]
    machine: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Baseline:
        """Read a baseline written by :mod:`rps_infer.bench.baseline`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path, data["runner_class"], data["cases"], data.get("machine", {}))

    def median(self, case: str) -> float | None:
        """The case's baseline median in seconds, or None."""
        entry = self.cases.get(case)
        return None if entry is None else float(entry["median"])

    def fastest(self, case: str) -> float | None:
        """The case's baseline fastest round in seconds, or None (older baselines lack it)."""
        entry = self.cases.get(case)
        return None if entry is None or "min" not in entry else float(entry["min"])


@dataclass(frozen=True)
class Timing:
    """A measurement as the gate sees it: median and fastest round, seconds per call."""

    median: float
    fastest: float


@dataclass
class GateRow:
    """One line of the gate's table."""

    case: str
    group: str
    baseline: float | None
    now: float
    verdict: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """now / baseline."""
        return None if not self.baseline else self.now / self.baseline


def same_kind(runner_class: str, other: str) -> bool:
    """Same device kind, architecture and core count: ``cpu-x86_64-2c-*``."""
    return runner_class.split("-")[:3] == other.split("-")[:3]


class Gate:
    """Judges each case against its baseline; holds the rows of the final table."""

    def __init__(self, runner_class: str, baseline_dir: Path, thresholds: dict[str, float],
                 baseline_file: Path | None = None, relations: list[dict] | None = None) -> None:
        self.runner_class = runner_class
        self.thresholds = thresholds
        self.relations = relations or []
        self.relation_lines: list[str] = []
        self.medians: dict[str, float] = {}
        self.rows: list[GateRow] = []
        self.baseline: Baseline | None = None
        self.scaled = False  # baseline from another runner class of the same kind
        self.calibration_now: dict[str, float] = {}
        self.notice = ""
        self._select_baseline(baseline_dir, baseline_file)

    def _select_baseline(self, baseline_dir: Path, baseline_file: Path | None) -> None:
        if baseline_file is not None:
            self.baseline = Baseline.load(baseline_file)
            self.notice = f"baseline {baseline_file}"
            return
        exact = baseline_dir / f"{self.runner_class}.json"
        if exact.is_file():
            self.baseline = Baseline.load(exact)
            self.notice = f"baseline {exact.name} (this runner class)"
            return
        kin = sorted(p for p in baseline_dir.glob("*.json") if same_kind(self.runner_class, p.stem))
        if kin:
            self.baseline = Baseline.load(kin[0])
            self.scaled = True
            self.notice = (f"no baseline for {self.runner_class}; using {kin[0].name} scaled by the "
                           "calibration ratio")
        else:
            self.notice = f"no baseline fits {self.runner_class}: cases are reported, not failed"

    def threshold(self, group: str) -> float:
        """The allowed slowdown of a group (0.35 = 35 % slower)."""
        return self.thresholds.get(group, self.thresholds["inprocess"])

    def scale(self) -> float | None:
        """Factor from baseline times to this machine: 1 for this runner class, the geometric
        mean of the calibration ratios for a kin baseline, None when not yet calibrated."""
        if not self.scaled:
            return 1.0
        ratios = [now / base for case, now in self.calibration_now.items()
                  if (base := self.baseline.median(case))]
        if not ratios:
            return None
        return math.exp(sum(math.log(r) for r in ratios) / len(ratios))

    def expected(self, case: str, fastest: bool = False) -> float | None:
        """The baseline median (or fastest round) of ``case`` scaled to this machine, or None."""
        if self.baseline is None:
            return None
        base = self.baseline.fastest(case) if fastest else self.baseline.median(case)
        scale = self.scale()
        return None if base is None or scale is None else base * scale

    def judge(self, case: str, group: str, timing: Timing, remeasure: Callable[[], Timing]) -> GateRow:
        """Verdict for one case.

        A case beyond its threshold is re-measured (up to ``REMEASURES`` times, while it
        still looks slow); it is a regression only if the best median *and* the best
        fastest round are both beyond the threshold. Host noise on shared machines moves
        medians (x2 seen here) far more than fastest rounds; a real slowdown moves both.
        """
        if group == CALIBRATION_GROUP:
            self.calibration_now[case] = timing.median
        expected = self.expected(case)
        note = f"scaled x{self.scale():.2f}" if self.scaled and expected is not None else ""
        if expected is None:
            row = GateRow(case, group, None, timing.median, "no baseline", note)
        else:
            factor = 1 + self.threshold(group)
            fastest = self.expected(case, fastest=True)

            def looks_slow(t: Timing) -> bool:
                return t.median > expected * factor and (fastest is None or t.fastest > fastest * factor)

            looks = 0
            while looks_slow(timing) and looks < REMEASURES:
                again = remeasure()
                timing = Timing(min(timing.median, again.median), min(timing.fastest, again.fastest))
                looks += 1
            if looks:
                note += f"{', ' if note else ''}re-measured x{looks}"
            slow = looks_slow(timing)
            if group == CALIBRATION_GROUP and self.scaled:
                verdict = "calibration"  # it defines the scale; it cannot regress against itself
            elif slow:
                verdict = "REGRESSION"
            else:
                verdict = "ok"
                if timing.median > expected * factor:
                    note += f"{', ' if note else ''}noise: fastest round within limit"
            row = GateRow(case, group, expected, timing.median, verdict, note)
        self.rows.append(row)
        self.medians[case] = row.now
        return row

    def check_relations(self, case: str) -> list[str]:
        """Speed-ups that ``case`` completes: "faster x by <= than", both medians of this run.

        Returns a message per violated relation (empty when all hold). Relations whose
        other case was not measured (skipped, deselected) are not judged.
        """
        problems = []
        for rule in self.relations:
            faster, than, by = rule["faster"], rule["than"], float(rule["by"])
            if case not in (faster, than) or faster not in self.medians or than not in self.medians:
                continue
            ratio = self.medians[than] / self.medians[faster]
            verdict = "ok" if ratio >= by else "TOO SLOW"
            line = f"{faster} is {ratio:.2f}x faster than {than} (required {by:g}x): {verdict}"
            self.relation_lines.append(line)
            if verdict != "ok":
                problems.append(line)
        return problems

    def table(self) -> list[str]:
        """The gate's table, one row per judged case."""
        head = f"{'case':58} {'group':11} {'baseline':>10} {'now':>10} {'ratio':>6}  verdict"
        lines = [f"latency gate ({self.runner_class}): {self.notice}", head, "-" * len(head)]
        for r in self.rows:
            base = "-" if r.baseline is None else _us(r.baseline)
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
            limit = f" (limit {1 + self.threshold(r.group):.2f})" if r.verdict == "REGRESSION" else ""
            note = f"  [{r.note}]" if r.note else ""
            lines.append(f"{r.case[:58]:58} {r.group:11} {base:>10} {_us(r.now):>10} {ratio:>6}  "
                         f"{r.verdict}{limit}{note}")
        lines += [f"relation: {line}" for line in self.relation_lines]
        return lines


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f}us" if seconds < 1e-2 else f"{seconds * 1e3:.2f}ms"


def _gate_config(rootdir: Path) -> dict:
    pyproject = rootdir / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("rps_infer", {}).get("gate", {})


def load_thresholds(rootdir: Path) -> dict[str, float]:
    """Defaults updated from ``[tool.rps_infer.gate] thresholds`` in pyproject.toml."""
    return {**DEFAULT_THRESHOLDS, **_gate_config(rootdir).get("thresholds", {})}


def load_relations(rootdir: Path) -> list[dict]:
    """``[tool.rps_infer.gate] relations``: speed-ups the suite must show."""
    return list(_gate_config(rootdir).get("relations", []))


# -- pytest hooks ------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    """--gate, --runner-class, --gate-baseline."""
    group = parser.getgroup("rps_infer latency gate")
    group.addoption("--gate", action="store_true", help="fail benchmarks slower than their baseline")
    group.addoption("--runner-class", default=None,
                    help="baseline name (default: derived from this machine, e.g. cpu-x86_64-2c-amd-epyc)")
    group.addoption("--gate-baseline", type=Path, default=None,
                    help="compare with this baseline file instead of benchmarks/baselines/<runner-class>.json")


def pytest_configure(config: pytest.Config) -> None:
    """Create the gate when --gate is given."""
    if not config.getoption("--gate"):
        return
    runner = config.getoption("--runner-class") or machine.runner_class()
    root = Path(config.rootpath)
    config.stash[GATE_KEY] = Gate(runner, root / "benchmarks" / "baselines", load_thresholds(root),
                                  config.getoption("--gate-baseline"), load_relations(root))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Calibration cases run first: the gate may need their ratio to judge the rest."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("calibration") else 1)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the gate's table before pytest's summary line."""
    gate = config.stash.get(GATE_KEY, None)
    if gate is None:
        return
    terminalreporter.section("latency gate")
    for line in gate.table():
        terminalreporter.write_line(line)


def gate_of(config: pytest.Config) -> Gate | None:
    """The active gate, or None without --gate."""
    return config.stash.get(GATE_KEY, None)


def slowdown_factor() -> float:
    """``$RPS_INFER_BENCH_SLOWDOWN``: extra spin per call in multiples of the baseline (tests of the gate)."""
    return float(os.environ.get(SLOWDOWN_ENV, "0") or 0)
