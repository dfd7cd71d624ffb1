"""The A/B side of the latency gate: a base tree and the working tree timed in worker
processes, a flagged case looked at again by fresh workers, relations timed side by side,
and the cases the base declares that the head no longer does.

:class:`ABGate` times and hands its results to the run's
:class:`~rps_infer.bench.judges.gate.GateJudge`; :class:`~rps_infer.bench.harness.Harness`
decides when a case goes here.
"""

from __future__ import annotations

from dataclasses import replace

from rps_infer.bench.cases import Case, latency_name, suite_cases
from rps_infer.bench.judges.gate import GateJudge
from rps_infer.bench.judges.verdicts import GateRow, Verdict, check_relation, judge_relation
from rps_infer.bench.runners.ab import ABResult, ABSession
from rps_infer.bench.runners.revisions import Tree, materialise, top_level
from rps_infer.errors import RpsInferError
from rps_infer.project import GateConfig, Project, Relation

MAX_CONFIRMATIONS = 8  # fresh worker sessions per run for second looks at flagged cases


class ABGate:
    """The A/B timing of one run against ``base_commit``; its workers start on first use."""

    def __init__(self, project: Project, settings, config: GateConfig, judge: GateJudge, base_commit: str) -> None:
        self.project, self.settings, self.config = project, settings, config
        self.judge, self.base_commit = judge, base_commit
        self.notices: list[str] = []
        self._session: ABSession | None = None
        self._cases: dict[str, dict] = {}  # descriptions of the cases timed A/B, for relations
        self._confirmations = 0

    def session(self) -> ABSession:
        """The running session (started on first use; a :class:`RevisionError` when the base cannot run)."""
        if self._session is None:
            self._session = self._start_session()
        return self._session

    def _start_session(self) -> ABSession:
        top = top_level(self.project.root)
        subdir = self.project.root.relative_to(top)
        base = materialise(self.project.root, self.base_commit, self.project.trees_dir, "base", subdir)
        head = Tree(top, None, "head", subdir)
        config = self.config
        session = ABSession(base, head, blocks=config.blocks, block_seconds=config.block_seconds,
                            case_seconds=config.case_seconds, interleave=config.interleave, workers=config.workers,
                            threads=self.settings.threads, tensorflow=self.settings.tensorflow,
                            confidence=config.confidence, pin=config.pin,
                            models=str(self.settings.models) if self.settings.models else None)
        session.start(all_models=self.settings.all_models)
        return session

    def measure(self, case: Case) -> tuple[ABResult, GateRow | None]:
        """Time ``case`` against the base and judge it; a REGRESSION must be confirmed by fresh workers."""
        session = self.session()
        self._cases[case.name] = case.description
        reported = self.judge.group_of(case.name, case.group) == "reference"
        result = session.measure(case.name, case.description, light=reported)
        if result.status in ("unavailable", "unsupported", "parity", "error"):
            return result, None
        row = self.judge.judge_ab(case.name, case.group, result)
        if row is not None and row.verdict.fails:
            result, row = self._second_look(session, case, result, row)
        return result, row

    def _second_look(self, session: ABSession, case: Case, first: ABResult, row: GateRow) -> tuple[ABResult, GateRow]:
        """A flagged case timed again in new worker processes: it fails only if that look flags it
        too. (The interval resamples blocks, not processes: a worker can carry a layout or state
        that makes it a few percent slower than its twin for the whole run; seen: a forest x1.08
        between identical trees, x1.00 in fresh processes.) Beyond ``MAX_CONFIRMATIONS`` fresh
        sessions per run, later flags get their second look in the running workers."""
        self._confirmations += 1
        if self._confirmations <= MAX_CONFIRMATIONS:
            with session.fresh() as fresh:
                second = fresh.measure(case.name, case.description)
            where = "fresh workers"
        else:
            second, where = session.measure(case.name, case.description), "a second look (no fresh workers left)"
        again = self.judge.judge_ab(case.name, case.group, second, record=False)
        iv = row.interval
        if again is not None and again.verdict.fails:
            note = f"confirmed by {where}; first look x{iv.ratio:.3f} [{iv.low:.3f}, {iv.high:.3f}]"
            return second, self.judge.replace_last(replace(again, note=note))
        look = "-" if again is None or again.interval is None else \
            f"x{again.interval.ratio:.3f} [{again.interval.low:.3f}, {again.interval.high:.3f}]"
        return first, self.judge.replace_last(replace(row, verdict=Verdict.OK,
                                                      note=f"flagged, not confirmed by {where}: {look}"))

    def relation(self, rule: Relation) -> tuple[str, bool]:
        """A relation judged on its two cases timed side by side in the head's workers (medians taken
        minutes apart drift on these VMs; seen: a 3.8x relation read as 1.08x); when that says TOO
        SLOW, fresh workers take a second look. Without A/B workers, by the two cases' medians."""
        medians = self.judge.medians
        if self._session is None or not {rule.faster, rule.than} <= self._cases.keys():
            return check_relation(rule, medians)
        name = f"{rule.faster} vs {rule.than}"
        faster, than = self._cases[rule.faster], self._cases[rule.than]
        looks = [self._session.measure_pair(name, faster, than)]
        if looks[0].status == "compared" and not judge_relation(rule, looks[0].interval)[1]:
            with self._session.fresh() as fresh:
                looks.append(fresh.measure_pair(name, faster, than))
        if looks[-1].status != "compared":
            return check_relation(rule, medians)
        note = f"their own runs' medians: {medians[rule.than] / medians[rule.faster]:.2f}x"
        if len(looks) == 2:
            verdict = "confirmed" if not judge_relation(rule, looks[1].interval)[1] else "not confirmed"
            note += f"; {verdict} by fresh workers, first look {1 / looks[0].interval.ratio:.2f}x"
        return judge_relation(rule, looks[-1].interval, note)

    def finish(self) -> None:
        """List the removed cases, stop the workers."""
        if self._session is not None:
            self._report_removed(self._session.base)
            self._session.close()

    def _base_entries(self, base: Tree) -> dict:
        """The models the base declares: its own settings', else (a base from before the settings
        named them) the manifest the head's settings name, as the base has it."""
        project = Project.find(base.cwd)
        if self.settings.models is not None or project.config.models:
            return project.models(self.settings.models)
        manifest = self.project.manifest
        if manifest is not None and (base.cwd / manifest.relative_to(self.project.root)).is_file():
            return project.models(base.cwd / manifest.relative_to(self.project.root))
        return project.models()

    def _report_removed(self, base: Tree) -> None:
        """Rows for the suite cases the base declares and the head no longer does."""
        try:
            head = self.head_entries()
            theirs = self._base_entries(base)
        except RpsInferError as exc:
            self.notices.append(f"removed cases not listed: {str(exc).splitlines()[0]}")
            return
        s = self.settings
        mine = {c.id for c in suite_cases(head, s.keep, s.device, s.all_models)}
        for case in suite_cases(theirs, s.keep, s.device, s.all_models):
            if case.id not in mine:
                self.judge.removed(latency_name(case.model, case.backend, case.batch), "inprocess",
                                   f"declared at {base.describe()}, not in the working tree")

    def head_entries(self) -> dict:
        """The models the working tree declares (none for a run of file cases only)."""
        if self.settings.models is None and not self.project.config.models:
            return {}
        return self.project.models(self.settings.models)
