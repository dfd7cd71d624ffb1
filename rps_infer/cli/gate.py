"""``rps-infer gate``: the project's declared suite, timed A/B against its base revision and gated."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("gate", help="time the declared suite against the base revision and fail a regression",
                       description="Run the project's declared suite with --benchmark-only --gate in the project "
                       "root: parity first, then every case timed against the base revision and the working tree "
                       "in the same run, interleaved, on this machine. The base: --gate-base REV; in a pull "
                       "request (GITHUB_BASE_REF) the merge-base with its target branch; else this runner class's "
                       "baseline commit, else the newest baseline's; else the merge-base with base_branch (HEAD's "
                       "parent on it). Exit 0 when nothing regressed, 1 when a case or the suite did, 2 when "
                       "the run could not be made (no declared models, a usage error, nothing collected).")
    p.add_argument("--gate-base", metavar="REV", default=None, help="the base revision (default: see above)")
    p.add_argument("--gate-mode", choices=("auto", "ab", "stored"), default=None,
                   help="ab, stored (against the baseline's numbers) or auto (ab with git history)")
    p.add_argument("--gate-json", type=common.writable_file, default=None, metavar="PATH",
                   help="also write the verdicts to PATH (and the ratios' plot beside it)")
    p.add_argument("--runner-class", default=None, help="the baseline to use (default: derived from this machine)")
    p.add_argument("--project", type=common.existing_folder, default=Path("."),
                   help="a folder of the project (default: the current one)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARG", help="more pytest arguments, after --")


# pytest's exit codes other than 0 (passed) and 1 (a test failed): what they mean here.
PYTEST_EXITS = {2: "interrupted", 3: "an internal error", 4: "a usage error", 5: "no test collected"}


def run(args: argparse.Namespace) -> int:
    """0 when nothing regressed, 1 when a case or the suite did (pytest's own output says which)."""
    from rps_infer.bench.baseline import suite_command
    from rps_infer.errors import RpsInferError
    from rps_infer.project import Project

    project = Project.find(args.project)
    project.models()  # no declared models: one line now, not a collection error
    missing = [arg for arg in project.config.suite if arg.endswith(".py") and not (project.root / arg).is_file()]
    if missing:
        raise RpsInferError(f"the suite file {missing[0]} ({project.where}: suite) is not in {project.root}; "
                            "`rps-infer init` writes tests/test_models.py")
    options = [f"--{name.replace('_', '-')}={value}" for name, value in
               (("gate_base", args.gate_base), ("gate_mode", args.gate_mode), ("runner_class", args.runner_class),
                ("gate_json", args.gate_json and args.gate_json.resolve())) if value]
    command = suite_command(project, "--benchmark-only", "--gate", *options, *args.pytest_args)
    code = subprocess.run(command, cwd=project.root, check=False).returncode
    if code in PYTEST_EXITS:
        raise RpsInferError(f"the gated run stopped: pytest exit {code}, {PYTEST_EXITS[code]} (its output is above)")
    return code
