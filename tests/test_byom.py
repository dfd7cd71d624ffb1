"""Bring your own model: every source format a user has converts to ONNX with parity proven,
verifies against its own export (pass) and against a planted bug (fail); nothing is ever
unpickled; the user's own inputs are checked; any ONNX file can be benchmarked and inspected."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from rps_infer.cli import main
from rps_infer.convert import convert
from rps_infer.errors import ModelFormatError
from rps_infer.formats import ModelHints, open_model

NET = '''
import torch
from torch import nn


class TwoInputs(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.dense = nn.Linear(5, width)

    def forward(self, image, extra):
        return torch.sigmoid(self.conv(image) + self.dense(extra)[:, :, None, None])
'''
SHAPES = ["--input-shape", "image=1x3x8x8", "--input-shape", "extra=1x5"]
HINTS = {"image": (1, 3, 8, 8), "extra": (1, 5)}


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory) -> Path:
    """A user's folder: a network class module and its checkpoints in every PyTorch form."""
    import importlib
    import sys

    d = tmp_path_factory.mktemp("user")
    (d / "usernet.py").write_text(textwrap.dedent(NET))
    sys.path.insert(0, str(d))
    try:
        module = importlib.import_module("usernet")
    finally:
        sys.path.remove(str(d))
    torch.manual_seed(0)
    net = module.TwoInputs().eval()
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, d / "checkpoint.pth.tar")
    torch.jit.script(net).save(str(d / "scripted.pt"))
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.rand(2, 3, 8, 8), torch.rand(2, 5)),
                                  dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(d / "program.pt2"))
    return d


def _hints(d: Path) -> ModelHints:
    return ModelHints("usernet:TwoInputs", {"width": 4}, (d,), HINTS)


def _planted(path: Path, out: Path, k: float = 1.01) -> Path:
    """``path`` with its first weight tensor (a conv's, or a dense layer's) scaled by ``k``."""
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if len(i.dims) >= 2)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(k), init.name))
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("source", ["checkpoint.pth.tar", "scripted.pt", "program.pt2"])
def test_every_pytorch_form_converts_verifies_and_catches_a_planted_bug(user_dir, source, tmp_path, capsys):
    hints = ["--torch-model", "usernet:TwoInputs", "--torch-kwargs", "width=4", "--python-path", str(user_dir)]
    extra = [*hints, *SHAPES] if source != "program.pt2" else []  # a program knows its inputs
    out = tmp_path / "model.onnx"
    assert main(["convert", str(user_dir / source), "--to", "onnx", "--out", str(out), *extra]) == 0
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["image", "extra"]  # names kept
    assert main(["verify", str(user_dir / source), str(out), *extra]) == 0
    assert main(["verify", str(user_dir / source), str(_planted(out, tmp_path / "bug.onnx")), *extra]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_a_state_dict_without_its_class_is_refused_in_one_line(user_dir, tmp_path, capsys):
    assert main(["convert", str(user_dir / "checkpoint.pth.tar"), "--to", "onnx", "--out",
                 str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--torch-model module.path:ClassName" in err
    assert not (tmp_path / "m.onnx").exists()


def test_a_pickled_module_is_refused_without_running_anything(tmp_path):
    """The pickle would create a file when unpickled: it must not exist afterwards."""
    witness = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (witness,))

    torch.save({"model": Evil()}, tmp_path / "model.pt")
    with pytest.raises(ModelFormatError, match="refused unopened"):
        open_model(tmp_path / "model.pt")
    assert main(["info", str(tmp_path / "model.pt")]) == 2
    assert not witness.exists()


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> Path:
    """A Keras functional model with its own names (board -> policy), as .keras, .h5 and a SavedModel."""
    import keras

    d = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    board = keras.Input((81,), name="board")
    hidden = keras.layers.Dense(12, activation="tanh")(board)
    policy = keras.layers.Dense(9, activation="softmax", name="policy")(hidden)
    model = keras.Model(board, policy)
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    model.export(str(d / "saved"), format="tf_saved_model", verbose=False)
    return d


@pytest.mark.slow
def test_keras_models_keep_their_names_and_convert_with_parity(keras_files, tmp_path, capsys):
    for source in ("model.keras", "model.h5"):
        out = tmp_path / f"{Path(source).stem}-{source[-2:]}.onnx"
        assert main(["convert", str(keras_files / source), "--to", "onnx", "--out", str(out)]) == 0
        graph = onnx.load(str(out)).graph
        assert [i.name for i in graph.input] == ["board"] and [o.name for o in graph.output] == ["policy"]
        assert main(["verify", str(keras_files / source), str(out)]) == 0
        assert main(["verify", str(keras_files / source), str(_planted(out, tmp_path / "bug.onnx"))]) == 1
    assert main(["verify", str(keras_files / "model.keras"), str(keras_files / "saved")]) == 0
    capsys.readouterr()
    assert main(["convert", str(keras_files / "saved"), "--to", "onnx", "--out", str(tmp_path / "s.onnx")]) == 2
    assert "SavedModel" in capsys.readouterr().err and not (tmp_path / "s.onnx").exists()


def test_an_onnx_mlp_rebuilds_in_pytorch_and_keras_and_another_graph_is_refused(built_zoo, tmp_path, capsys):
    source = built_zoo["policy"].onnx_path
    for to, suffix in (("torch", ".pt"), ("keras", ".keras"), ("gojson", ".json")):
        assert main(["convert", str(source), "--to", to, "--out", str(tmp_path / f"p{suffix}")]) == 0
    assert open_model(tmp_path / "p.json").weights is not None
    capsys.readouterr()
    assert main(["convert", str(built_zoo["unet-ci"].onnx_path), "--to", "torch", "--out", str(tmp_path / "u.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Conv x" in err and "onnx2torch" in err


def test_own_inputs_are_used_and_a_mismatch_is_exit_2(user_dir, tmp_path, capsys):
    hints = ["--torch-model", "usernet:TwoInputs", "--python-path", str(user_dir), *SHAPES]
    out = convert(user_dir / "checkpoint.pth.tar", "onnx", tmp_path / "m.onnx", hints=_hints(user_dir)).path
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", image=rng.random((7, 3, 8, 8), dtype=np.float32),
             extra=rng.random((7, 5), dtype=np.float32))
    assert main(["verify", str(user_dir / "checkpoint.pth.tar"), str(out), *hints, "--inputs",
                 str(tmp_path / "mine.npz"), "--save-outputs", str(tmp_path / "outs.npz"), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["batches"]) == ["7"]
    assert sorted(np.load(tmp_path / "outs.npz").files) == ["candidate.output.b7", "reference.output.b7"]
    np.savez(tmp_path / "bad.npz", image=rng.random((7, 3, 9, 9), dtype=np.float32),
             extra=rng.random((7, 5), dtype=np.float32))
    assert main(["verify", str(user_dir / "checkpoint.pth.tar"), str(out), *hints, "--inputs",
                 str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "input 'image'" in err and "float32[N, 3, 8, 8]" in err


def test_bench_and_info_take_any_onnx_file(user_dir, tmp_path, capsys):
    out = convert(user_dir / "program.pt2", "onnx", tmp_path / "m.onnx").path
    assert main(["bench", str(out), "--batch-sizes", "1,2", "--budget", "0.05", "--out", str(tmp_path / "r")]) == 0
    (folder,) = (tmp_path / "r").iterdir()
    rows = json.loads((folder / "report.json").read_text())["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("onnxrt-cpu", 1), ("onnxrt-cpu", 2)]
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["graph"]["opsets"]["ai.onnx"] == 18 and info["graph"]["checker"] == "ok"
    assert info["inputs"] == ["image: float32[batch, 3, 8, 8]", "extra: float32[batch, 5]"]
    assert info["parameters"] == info["graph"]["parameters"] > 0


def test_the_python_api_takes_in_memory_models(user_dir, tmp_path):
    import rps_infer

    module = torch.jit.load(str(user_dir / "scripted.pt")).eval()
    out = convert(user_dir / "scripted.pt", "onnx", tmp_path / "m.onnx", hints=_hints(user_dir)).path
    x = {"image": np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32),
         "extra": np.random.default_rng(2).random((2, 5), dtype=np.float32)}
    assert rps_infer.verify_models(module, onnx.load(str(out)), inputs=x)
    with pytest.raises(AssertionError, match="FAIL"):
        rps_infer.assert_parity(module, _planted(out, tmp_path / "bug.onnx", 1.5), inputs=x)


def test_the_platform_names_what_runs(user_dir):
    """TorchScript is what Triton's libtorch backend runs; an eager module is not."""
    from rps_infer.backends.pyt import TorchBackend

    scripted = TorchBackend(open_model(user_dir / "scripted.pt", hints=_hints(user_dir)))
    eager = TorchBackend(open_model(user_dir / "checkpoint.pth.tar", hints=_hints(user_dir)))
    assert (scripted.platform, eager.platform) == ("pytorch_libtorch", "pytorch_eager")
