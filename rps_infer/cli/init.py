"""``rps-infer init``: make a repository an rps_infer project (settings, suite file, CI workflow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rps_infer.cli import args as common

TEST_FILE = Path("tests") / "test_models.py"
WORKFLOW = Path(".github") / "workflows" / "rps-infer.yml"
GITIGNORE_LINE = ".rps_infer/"
TEST_TEMPLATE = '''"""The models declared in [tool.rps_infer] (pyproject.toml or rps_infer.toml): parity, then latency,
of every model x backend x batch size. Written by `rps-infer init`. Run it with
`pytest {path} --benchmark-only`, gated with `rps-infer gate`."""

from rps_infer.benchmarks.test_models import test_latency, test_parity  # noqa: F401 - collected by pytest
'''
WORKFLOW_TEMPLATE = '''# Written by `rps-infer init`: parity and the latency gate on every push and pull request.
# The gate times the base revision (in a pull request the merge-base with its target branch,
# else the commit of the runner's baseline) against this one in the same run: it needs the
# full history (fetch-depth: 0). Add your project's own install steps where it needs them.
name: rps-infer
on:
  push:
    branches: [{branch}]
  pull_request:

jobs:
  cpu:
    runs-on: ubuntu-latest
    timeout-minutes: 60
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: install rps_infer
        run: python -m pip install "rps_infer[cpu,bench]=={version}" --extra-index-url https://download.pytorch.org/whl/cpu
      - name: parity and latency gate
        run: rps-infer gate --gate-json rps-gate.json
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: rps-gate-cpu
          path: rps-gate.*

  gpu:
    # A self-hosted runner with an NVIDIA GPU (CUDA, cuDNN, TensorRT): the declared GPU backends
    # run here and skip with a reason on the CPU job. Its baseline is its own runner class (gpu-...).
    runs-on: [self-hosted, gpu]
    timeout-minutes: 90
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - name: install rps_infer
        run: python3 -m pip install "rps_infer[gpu,bench]=={version}"
      - name: parity and latency gate
        run: rps-infer gate --gate-json rps-gate.json
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: rps-gate-gpu
          path: rps-gate.*
'''


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("init", help="declare model files for parity and the latency gate in this repository",
                       description="Declare MODEL files in the project's settings ([tool.rps_infer] of pyproject.toml, "
                       "else rps_infer.toml; tables added beside any already there), and write what is missing of "
                       "tests/test_models.py (collects the declared suite) and .github/workflows/rps-infer.yml (a CPU "
                       "job and a self-hosted GPU job running `rps-infer gate`). Nothing is written unless every "
                       "model declares cleanly.")
    p.add_argument("models", nargs="+", type=common.existing_path, metavar="MODEL",
                   help="a model file to time (ONNX, PyTorch, Keras, SavedModel, Go JSON, scikit-learn, XGBoost)")
    p.add_argument("--reference", type=common.existing_path, metavar="FILE",
                   help="judge parity against this file (e.g. the PyTorch checkpoint an ONNX file came from)")
    p.add_argument("--name", default=None, help="the model's name (one MODEL; default: its file name's stem)")
    p.add_argument("--backends", default=None, help="comma-separated backend specs (default: the model's own "
                   "backend and the reference's, on the CPU)")
    p.add_argument("--batch-sizes", type=common.batch_sizes, default=(1,), metavar="1,8",
                   help="batch sizes to time (default 1)")
    p.add_argument("--inputs", default=None, metavar="FILE.npz|GENERATOR",
                   help="the model's own inputs (.npz or a folder of .npy), or a generator (uniform, digits, "
                   "rps-positions; default: by each input's shape)")
    p.add_argument("--tolerance", default=None, help="tolerance preset (default fp32)")
    p.add_argument("--project", type=common.existing_folder, default=Path("."),
                   help="a folder of the repository (default: the current one)")
    p.add_argument("--force", action="store_true", help="replace a model table of the same name")
    common.add_model_hints(p)


def run(args: argparse.Namespace) -> int:
    """Validate the tables, then write settings, suite file, workflow and .gitignore line."""
    from rps_infer.project import Project
    from rps_infer.scaffold import Scaffold

    if args.name and len(args.models) > 1:
        from rps_infer.errors import RpsInferError

        raise RpsInferError("--name names one MODEL; give one MODEL per `rps-infer init`, or no --name")
    project = Project.find(args.project)
    scaffold = Scaffold(project.root, project.config_file)
    hints = common.hints_of(args)
    for model in args.models:
        reference = args.reference.resolve() if args.reference else None
        scaffold.declare(args.name or model.stem, model.resolve(), reference=reference,
                         backends=[b for b in (args.backends or "").split(",") if b], batch_sizes=args.batch_sizes,
                         inputs=args.inputs, tolerance=args.tolerance, hints=hints, replace=args.force)
    written = scaffold.write({TEST_FILE: TEST_TEMPLATE.format(path=TEST_FILE.as_posix()),
                              WORKFLOW: WORKFLOW_TEMPLATE.format(version=_version(),
                                                                 branch=project.config.base_branch)},
                             GITIGNORE_LINE)
    for path, what in written:
        print(f"{what}: {path}")
    print("next: commit these files, then `rps-infer baseline` (this machine's numbers) and `rps-infer gate`")
    return 0


def _version() -> str:
    from rps_infer.version import VERSION

    return VERSION
