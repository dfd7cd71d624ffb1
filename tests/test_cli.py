"""The rps-infer command line: exit codes, one-line errors, and verify catching real export bugs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rps_infer.cli import main
from rps_infer.formats import gojson
from rps_infer.nets.mlp import random_weights

from .conftest import SHARED, SKIP_SHARED
from .onnx_graphs import mlp_graph

RPS_INFER = str(Path(sys.executable).parent / "rps-infer")


def _weights(kind, seed=0, hidden=32, scale=1.0):
    return random_weights(np.random.default_rng(seed), kind, hidden_size=hidden, scale=scale)


@pytest.fixture
def value_model(tmp_path):
    """A Go-trained value file where available (else a seeded one) and its weights."""
    path = SHARED / "rps_h64_g500_e1_20250512-101559_value.model"
    if not path.is_file():
        path = gojson.write(_weights("value"), tmp_path / "value.model")
    return path, gojson.read(path)


def test_verify_accepts_a_correct_hand_built_export(tmp_path, value_model, capsys):
    path, w = value_model
    good = mlp_graph(w, tmp_path / "good.onnx")
    assert main(["verify", str(path), str(good)]) == 0
    assert capsys.readouterr().out.startswith("PASS")


def test_verify_rejects_value_export_without_sigmoid_naming_output_and_error(tmp_path, value_model):
    """The Done-when line, through the installed console script."""
    path, w = value_model
    bad = mlp_graph(w, tmp_path / "export_without_sigmoid.onnx", bug="no-sigmoid")
    proc = subprocess.run([RPS_INFER, "verify", str(path), str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL" in proc.stdout
    assert "output 'output': max abs error" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("kind", "bug"), [("value", "no-sigmoid"), ("policy", "log-softmax"),
                                           ("policy", "transposed-hidden"), ("value", "transposed-hidden")])
@pytest.mark.parametrize("scale", [1.0, 1000.0], ids=["normal", "saturating"])
def test_verify_rejects_the_mistakes_real_exports_make(tmp_path, capsys, kind, bug, scale):
    w = _weights(kind, seed=3, scale=scale)
    src = gojson.write(w, tmp_path / f"{kind}.json")
    assert main(["verify", str(src), str(mlp_graph(w, tmp_path / "good.onnx"))]) == 0
    assert main(["verify", str(src), str(mlp_graph(w, tmp_path / "bad.onnx", bug=bug))]) == 1
    err = capsys.readouterr().err
    assert "mismatch: batch" in err and "max abs error" in err


@pytest.mark.parametrize("path_name", ["rps_h128_g1000_e10_20250512-101607_policy.model",
                                       "rps_h128_g1000_e10_20250512-101607_value.model"])
def test_verify_rejects_bugs_in_real_trained_models(tmp_path, capsys, path_name):
    path = SHARED / path_name
    if not path.is_file():
        pytest.skip(SKIP_SHARED)
    w = gojson.read(path)
    bug = "log-softmax" if w.kind == "policy" else "no-sigmoid"
    assert main(["verify", str(path), str(mlp_graph(w, tmp_path / "good.onnx"))]) == 0
    assert main(["verify", str(path), str(mlp_graph(w, tmp_path / "bad.onnx", bug=bug))]) == 1
    assert main(["verify", str(path), str(mlp_graph(w, tmp_path / "t.onnx", bug="transposed-hidden"))]) == 1


def test_verify_json_report(tmp_path, capsys):
    w = _weights("policy")
    src = gojson.write(w, tmp_path / "p.json")
    assert main(["verify", str(src), str(mlp_graph(w, tmp_path / "p.onnx")), "--json", "--batch-sizes", "2,5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and set(data["batches"]) == {"2", "5"}
    assert data["batches"]["5"]["outputs"][0]["top_move_agreement"] == 1.0


def test_verify_tolerance_overrides_change_the_verdict(tmp_path, capsys):
    w = _weights("policy")
    src = gojson.write(w, tmp_path / "p.json")
    other = gojson.write(_weights("policy", seed=9), tmp_path / "q.json")
    assert main(["verify", str(src), str(other)]) == 1
    assert main(["verify", str(src), str(other), "--atol", "1"]) == 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.onnx", "no such file"),
        (lambda d: (d / "garbage.onnx").write_bytes(b"\x00not a model") and d / "garbage.onnx", "ONNX"),
        (lambda d: (d / "bad.json").write_text("{") and d / "bad.json", "valid JSON"),
        (lambda d: (d / "m.txt").write_text("x") and d / "m.txt", "suffix"),
    ],
    ids=["missing", "garbage-onnx", "bad-json", "unknown-suffix"],
)
def test_unusable_input_exits_2_with_one_line(tmp_path, capsys, setup, message):
    src = gojson.write(_weights("value"), tmp_path / "v.json")
    bad = setup(tmp_path)
    assert main(["verify", str(src), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("rps-infer verify: error:")


def test_verify_refuses_models_with_different_inputs(tmp_path, capsys):
    w81 = random_weights(np.random.default_rng(0), "value", input_size=81, hidden_size=4)
    a = gojson.write(w81, tmp_path / "a.json")
    b = mlp_graph(random_weights(np.random.default_rng(0), "value", input_size=10, hidden_size=4), tmp_path / "b.onnx")
    assert main(["verify", str(a), str(b)]) == 2
    assert "expected shape" in capsys.readouterr().err


def test_unknown_preset_exits_2(tmp_path, capsys):
    src = gojson.write(_weights("value"), tmp_path / "v.json")
    assert main(["verify", str(src), str(src), "--tolerance", "fp8"]) == 2
    assert "unknown tolerance preset" in capsys.readouterr().err


def test_convert_and_info(tmp_path, capsys):
    src = gojson.write(_weights("policy"), tmp_path / "p.json")
    assert main(["convert", str(src), "--to", "onnx", "--exporter", "legacy"]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "p.onnx").is_file()
    assert main(["info", str(tmp_path / "p.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "onnx" and info["kind"] == "policy"
    assert info["inputs"] == ["input: float32[batch, 81]"] and info["outputs"] == ["output: float32[batch, 9]"]
    assert info["runtime"]["active_providers"] == ["CPUExecutionProvider"]
    assert main(["info", str(src)]) == 0
    assert "hidden" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such file"):
        main(["--debug", "info", str(tmp_path / "nope.onnx")])


@pytest.mark.parametrize("code", ["import rps_infer", "import rps_infer.cli, rps_infer.compare, rps_infer.formats, "
                                  "rps_infer.verify, rps_infer.convert, rps_infer.zoo, rps_infer.backends"])
def test_importing_the_package_imports_neither_torch_nor_tensorflow(code):
    check = f"{code}; import sys; heavy = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; " \
            "print(heavy); sys.exit(1 if heavy else 0)"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_help_is_fast_and_lists_the_commands():
    proc = subprocess.run([RPS_INFER, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("convert", "quantize", "verify", "info", "models", "bench", "serve", "demo"):
        assert command in proc.stdout


def test_a_reader_that_goes_away_stops_the_command_quietly():
    """``rps-infer models list | head -1`` style: exit 141 (as SIGPIPE would), no error line."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        proc = subprocess.run([sys.executable, "-m", "rps_infer.cli", "models", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_a_server_refusal_is_one_line_and_exit_2(monkeypatch, capsys):
    """A gRPC error reaching the command line (a client-side command against a server that
    refuses) is the environment, not a bug: one line naming the status, no traceback."""
    import grpc

    import rps_infer.cli.info as info_command

    class Refused(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "model 'digits-logreg' is not ready"

    def refuse(args):
        raise Refused()

    monkeypatch.setattr(info_command, "run", refuse)
    assert main(["info", __file__]) == 2
    assert capsys.readouterr().err == ("rps-infer info: error: the server answered UNAVAILABLE: "
                                       "model 'digits-logreg' is not ready\n")
