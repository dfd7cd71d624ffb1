"""``--device auto``: the best device that starts and agrees with the CPU, chosen out loud."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import rps_infer.runtime as runtime
from rps_infer.formats import open_model
from rps_infer.runtime import DEVICE_ORDER, choose_device

from .server_process import ServerProcess


def test_this_cpu_build_picks_the_cpu_and_says_why_each_better_device_was_skipped(built_zoo):
    choice, backend = choose_device(open_model(built_zoo["policy"].onnx_path), "onnxrt")
    assert choice.device == "cpu" and backend.device == "cpu"
    assert [d for d, _ in choice.skipped] == list(DEVICE_ORDER["onnxrt"][:-1])
    assert "cuda: CUDAExecutionProvider: not in this onnxruntime" in choice.line()
    assert backend.describe()["device_choice"] == choice.line()


def _scaled(path, out):
    model = onnx.load(str(path))
    init = model.graph.initializer[-1]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(2), init.name))
    onnx.save(model, str(out))
    return out


def test_a_device_that_computes_something_else_is_skipped(built_zoo, tmp_path, monkeypatch):
    """A planted 'cuda' that runs a graph with a doubled layer must lose to the CPU."""
    real = runtime.open_backend
    wrong = open_model(_scaled(built_zoo["policy"].onnx_path, tmp_path / "wrong.onnx"))

    def fake(model, spec=None, **options):
        if str(spec) == "onnxrt-cuda":
            return real(wrong, "onnxrt-cpu", **options)
        return real(model, spec, **options)

    monkeypatch.setattr(runtime, "open_backend", fake)
    choice, _ = choose_device(open_model(built_zoo["policy"].onnx_path), "onnxrt")
    assert choice.device == "cpu"
    assert "cuda: its outputs differ from the CPU's" in choice.line()


def test_a_device_that_agrees_is_chosen(built_zoo, monkeypatch):
    """The same planted 'cuda' on the right graph is picked: the check is not 'always CPU'."""
    real = runtime.open_backend

    def fake(model, spec=None, **options):
        if str(spec) != "onnxrt-cuda":
            return real(model, spec, **options)
        backend = real(model, "onnxrt-cpu", **options).activate()
        backend.device = "cuda"  # a stand-in GPU that computes exactly what the CPU does
        return backend

    monkeypatch.setattr(runtime, "open_backend", fake)
    choice, _ = choose_device(open_model(built_zoo["policy"].onnx_path), "onnxrt")
    assert choice.device == "cuda" and [d for d, _ in choice.skipped] == ["tensorrt"], choice.line()


@pytest.mark.parametrize("backend", ["pyt"])
def test_framework_backends_pick_the_cpu_here(built_zoo, backend):
    choice, _ = choose_device(open_model(built_zoo["policy"].artifacts()["pt"]), backend)
    assert choice.device == "cpu" and choice.skipped[0][0] == "cuda" and "CUDA" in choice.skipped[0][1]


def test_serve_device_auto_logs_its_choice(built_zoo):
    with ServerProcess("--policy", str(built_zoo["policy"].onnx_path), "--value", str(built_zoo["value"].onnx_path),
                       "--device", "auto") as proc:
        assert "model 'policy': device auto: onnxrt-cpu (skipped tensorrt" in proc.log()


def test_verify_device_auto_runs_the_candidate_on_the_chosen_device_and_says_so(built_zoo, capsys):
    from rps_infer.cli import main

    entry = built_zoo["policy"]
    assert main(["verify", str(entry.source), str(entry.onnx_path), "--device", "auto", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "device auto: onnxrt-cpu (skipped tensorrt: TensorrtExecutionProvider: not in this" in err
    assert '"device_choice": "device auto: onnxrt-cpu' in out


def test_bench_backend_auto_prints_and_records_its_choice(built_zoo, capsys):
    from rps_infer.bench.sweep import sweep

    result = sweep(built_zoo["policy"], ["onnxrt-auto"], [1], budget_s=0.01)
    assert "onnxrt-auto: device auto: onnxrt-cpu (skipped" in capsys.readouterr().err
    assert result.rows[0].runtime["device_choice"].startswith("device auto: onnxrt-cpu")
