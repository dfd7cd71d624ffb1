"""Adding a backend or a model family touches no module of the package: a throwaway plugin,
registered only through entry points, shows up in ``models list``, in the benchmark
suite's parametrisation and in its parity tests (which pass).

The plugin: ONNX's own reference evaluator (``onnx.reference``) as a backend, and a
"toy-softmax" family whose models are softmax regressions written with ``onnx.helper``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PLUGIN = '''
"""A throwaway backend and model family, registered only through entry points."""

from pathlib import Path

import numpy as np

from rps_infer.backends.base import Backend
from rps_infer.backends.registry import BackendInfo
from rps_infer.families import Family
from rps_infer.schemas import Strict


class ReferenceEvaluatorBackend(Backend):
    """Any ONNX file through onnx.reference (pure Python)."""

    name = "onnxref"

    def __init__(self, path, device="cpu"):
        super().__init__(device)
        self.path = Path(path)

    def _activate_impl(self):
        from onnx.reference import ReferenceEvaluator

        from rps_infer.formats.onnxfile import io_specs

        self.session = ReferenceEvaluator(str(self.path))
        return io_specs(self.path)

    def _infer_impl(self, feeds):
        names = [s.name for s in self._outputs]
        return dict(zip(names, self.session.run(names, dict(feeds)), strict=True))

    def _describe_impl(self):
        import onnx

        return {"framework": "onnx.reference", "version": onnx.__version__}


BACKEND = BackendInfo("onnxref", "toyplug:ReferenceEvaluatorBackend", formats=("onnx",), artifact="onnx",
                      platform="onnx_reference", thread_options=lambda n: {}, title="onnx.reference")


class ToyKeys(Strict):
    features: int
    classes: int
    seed: int


def artifacts(entry):
    return {"onnx": entry.onnx_path}


def build(entry, progress=None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from rps_infer.convert.proof import write_proven
    from rps_infer.runtime import open_backend
    from rps_infer.verify import compare_backends

    p = entry.params
    rng = np.random.default_rng(p.seed)
    w = numpy_helper.from_array(rng.normal(size=(p.features, p.classes)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=p.classes).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["z"]),
         helper.make_node("Softmax", ["z"], ["output"], axis=-1)], "toy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", p.features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", p.classes])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    def prove(tmp):
        with open_backend(tmp, "onnxref-cpu") as ref, open_backend(tmp) as cand:
            return compare_backends(ref, cand, batch_sizes=(1, 5), tol=entry.tolerance, generator=entry.inputs)

    entry.onnx_path.parent.mkdir(parents=True, exist_ok=True)
    return {"onnx": write_proven(entry.onnx_path, lambda tmp: onnx.save(model, str(tmp)), prove,
                                 "ONNX Runtime and onnx.reference disagree")}


FAMILY = Family(name="toy-softmax", params=ToyKeys, references={"onnx-reference": lambda entry: "onnxref-cpu"},
                artifacts=artifacts, build=build, definition=lambda entry: Path(__file__))
'''

ZOO = '''
[models.toy]
family = "toy-softmax"
features = 8
classes = 5
seed = 3
reference = "onnx-reference"
tolerance = "fp32"
backends = ["onnxrt-cpu", "onnxref-cpu"]
batch_sizes = [1, 4]
ci = true
inputs = "uniform"
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """An installed-looking plugin (module + dist-info with entry points) and a zoo naming it."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "site").mkdir()
    (root / "site" / "toyplug.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "site" / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rps_infer.backends]\nonnxref = toyplug:BACKEND\n\n"
                                           "[rps_infer.families]\ntoy-softmax = toyplug:FAMILY\n")
    (root / "models").mkdir()
    (root / "models" / "zoo.toml").write_text(ZOO)
    return {**os.environ, "PYTHONPATH": str(root / "site"), "RPS_INFER_ZOO": str(root / "models" / "zoo.toml")}


def _run(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_models_list_shows_the_plugin_family_and_backend(plugin_env):
    proc = _run(plugin_env, "-m", "rps_infer", "models", "list")
    assert proc.returncode == 0, proc.stderr
    assert "toy " in proc.stdout and "toy-softmax" in proc.stdout and "onnxref-cpu" in proc.stdout


def test_the_benchmark_suite_parametrises_and_proves_the_plugin_model(plugin_env):
    suite = ["rps_infer/benchmarks/test_models.py", "--zoo", plugin_env["RPS_INFER_ZOO"]]
    collected = _run(plugin_env, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *suite)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    for case in ("toy-onnxrt-cpu-b1", "toy-onnxrt-cpu-b4", "toy-onnxref-cpu-b1", "toy-onnxref-cpu-b4"):
        assert f"test_latency[{case}]" in collected.stdout and f"test_parity[{case}]" in collected.stdout
    parity = _run(plugin_env, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite, "--benchmark-disable")
    assert parity.returncode == 0, parity.stdout[-3000:] + parity.stderr[-2000:]
    assert "8 passed" in parity.stdout, parity.stdout[-1500:]


def test_an_unknown_backend_or_family_in_a_zoo_is_refused_by_name(plugin_env):
    bare = {k: v for k, v in plugin_env.items() if k != "PYTHONPATH"}  # the plugin not installed
    proc = _run(bare, "-m", "rps_infer", "models", "list")
    assert proc.returncode == 2
    assert "models.toy.family" in proc.stderr and "toy-softmax" in proc.stderr and "Traceback" not in proc.stderr
