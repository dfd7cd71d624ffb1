"""Serving a model repository: good models beside broken ones, sidecars, names that try to
escape, metadata from the graph, and the tritonclient example."""

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from rps_infer.client import NeuralClient, V2Client
from rps_infer.errors import RpsInferError
from rps_infer.game import realistic_positions
from rps_infer.nets import digits
from rps_infer.serving.repository import check_name, scan

from .server_process import ServerProcess

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def repository(built_zoo, tmp_path_factory):
    d = tmp_path_factory.mktemp("repository")
    for name in ("digits-logreg", "digits-rf", "digits-xgb"):
        shutil.copy(built_zoo[name].onnx_path, d / f"{name}.onnx")
    (d / "digits-rf.toml").write_text('backends = ["onnxrt-cpu"]\nbatching = false\ntolerance = "proba-tree"\n')
    (d / "broken.onnx").write_bytes(b"\x08\x07 this is not a protobuf graph")
    shutil.copy(built_zoo["digits-logreg"].onnx_path, d / "badsidecar.onnx")
    (d / "badsidecar.toml").write_text('device = "cpu"\nthreads = 4\n')
    outside = tmp_path_factory.mktemp("outside") / "secret.onnx"
    shutil.copy(built_zoo["digits-logreg"].onnx_path, outside)
    (d / "escape.onnx").symlink_to(outside)
    shutil.copy(built_zoo["digits-logreg"].onnx_path, d / "policy.onnx")  # shadowed by --policy
    (d / "notes.txt").write_text("not a model")
    return d


@pytest.fixture(scope="module")
def server(repository, built_zoo):
    with ServerProcess("--model-repository", str(repository), "--policy", str(built_zoo["policy"].onnx_path),
                       "--value", str(built_zoo["value"].onnx_path),
                       "--model", f"unet={built_zoo['unet-ci'].onnx_path}") as proc:
        yield proc


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "..", "x" * 129, "a b", "a\\b"])
def test_model_names_that_could_be_paths_are_refused(name):
    with pytest.raises(RpsInferError, match="invalid model name"):
        check_name(name)


def test_scan_lists_every_onnx_file_with_its_problem(repository):
    found = {m.name: m for m in scan(repository)}
    assert sorted(found) == ["badsidecar", "broken", "digits-logreg", "digits-rf", "digits-xgb", "escape", "policy"]
    assert "outside the repository" in found["escape"].error
    assert "field 'threads': expected no such key" in found["badsidecar"].error
    assert found["digits-rf"].batching is False and found["digits-rf"].device == "cpu"
    assert found["broken"].error is None  # a bad graph is found when it loads
    with pytest.raises(RpsInferError, match="not a directory"):
        scan(repository / "notes.txt")


def test_good_models_serve_beside_broken_ones(server):
    x = digits.split()[1][:64]
    with V2Client(server.target) as c:
        for name in ("digits-logreg", "digits-rf", "digits-xgb"):
            assert c.ready(name)
            out = c.infer(name, {"input": x})
            assert out["label"].dtype == np.int64 and out["label"].shape == (64,)
            assert out["probabilities"].shape == (64, 10)
            assert (out["label"] == digits.split()[3][:64]).mean() > 0.9
        for name in ("broken", "badsidecar", "escape"):
            assert not c.ready(name)
        code, message = _code(lambda: c.infer("broken", {"input": x}))
        assert code == grpc.StatusCode.UNAVAILABLE and "broken" in message and "ModelFormatError" in message
        code, message = _code(lambda: c.infer("escape", {"input": x}))
        assert code == grpc.StatusCode.UNAVAILABLE and "outside the repository" in message
        code, message = _code(lambda: c.infer("../digits-rf", {"input": x}))
        assert code == grpc.StatusCode.NOT_FOUND
        assert not c.ready()  # the server as a whole is not ready while a model is broken
    assert "'broken' version 1 failed to load" in server.log()


def test_metadata_comes_from_the_graph(server):
    with V2Client(server.target) as c:
        meta = c.metadata("digits-xgb")
    assert meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input", "FP32", [-1, 64])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 10])]


def test_command_line_models_serve_side_by_side_and_win_name_clashes(server, built_zoo):
    with NeuralClient(server.target) as c:
        probs, _ = c.predict_policy(realistic_positions(1, 3)[0])  # the RPS policy, not the copied classifier
    assert probs.shape == (9,)
    frame = {"image": np.random.default_rng(0).random((1, 6, 128, 128), np.float32),
             "audio": np.random.default_rng(1).random((1, 32, 4, 4), np.float32)}
    with V2Client(server.target) as c:
        assert c.infer("unet", frame)["output"].shape == (1, 3, 128, 128)
    assert "'policy' is shadowed" in server.log()


def test_the_tritonclient_example_prints_label_and_score(server, built_zoo):
    example = REPO / "examples" / "digits_client.py"
    proc = subprocess.run([sys.executable, str(example), "--url", server.target, "--count", "6"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 18
    x_test, y_test = digits.split()[1][:6], digits.split()[3][:6]
    for name in ("digits-logreg", "digits-rf", "digits-xgb"):
        expected = built_zoo[name].reference_backend().infer({"input": x_test})["label"]
        mine = [line.split() for line in lines if line.startswith(f"{name} ")]
        assert [int(w[4]) for w in mine] == list(y_test)  # true label
        assert [int(w[6]) for w in mine] == list(expected)  # predicted = what the native model says
        assert all(0.0 < float(w[8]) <= 1.0 for w in mine)  # score


def test_the_example_fails_clearly_on_a_model_that_is_not_ready(server):
    example = REPO / "examples" / "digits_client.py"
    proc = subprocess.run([sys.executable, str(example), "--url", server.target, "--models", "broken"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "broken is not ready" in proc.stderr


@pytest.mark.slow
def test_a_fixed_batch_model_asking_for_batching_serves_800_concurrent_calls_without_a_failure(tmp_path):
    """Merging requests for a [1, 81] model would hand it [N, 81] (seen: "expected shape [1, 81],
    got [6, 81]" when the guard is taken out): it must never be batched."""
    from concurrent.futures import ThreadPoolExecutor

    from rps_infer.formats import gojson
    from rps_infer.nets.mlp import forward

    from .onnx_graphs import mlp_graph

    w = gojson.read(REPO / "fixtures" / "policy.json")
    mlp_graph(w, tmp_path / "fixed.onnx", batch=1)
    (tmp_path / "fixed.toml").write_text("max_batch_size = 64\nmax_queue_delay_us = 500\n")
    x = realistic_positions(800, 3)
    want = forward(w, x)
    with ServerProcess("--model-repository", str(tmp_path), "--batching") as server:
        (line,) = [x for x in server.log().splitlines() if "model 'fixed'" in x]
        assert "batching off (its batch dim is fixed at 1)" in line

        def call(i: int) -> float:
            with V2Client(server.target) as client:
                return float(np.abs(client.infer("fixed", {"input": x[i:i + 1]})["output"][0] - want[i]).max())

        with ThreadPoolExecutor(32) as pool:
            errors = list(pool.map(call, range(800)))  # a failed call raises here
    assert len(errors) == 800 and max(errors) < 1e-5


def test_a_folder_of_versions_beside_a_flat_file_is_ambiguous_a_build_folder_is_not(built_zoo, tmp_path):
    """``models/build`` keeps ``digits-logreg/model.skops`` beside ``digits-logreg.onnx``: that
    folder holds no versions, so the flat file serves (``make demo`` serves that folder)."""
    for name in ("built", "versioned"):
        shutil.copy(built_zoo["digits-logreg"].onnx_path, tmp_path / f"{name}.onnx")
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "model.skops").write_bytes(b"native model")
    (tmp_path / "versioned" / "1").mkdir(parents=True)
    shutil.copy(built_zoo["digits-logreg"].onnx_path, tmp_path / "versioned" / "1" / "model.onnx")
    found = {(m.name, m.version): m for m in scan(tmp_path)}
    assert found[("built", "1")].error is None and found[("built", "1")].path == tmp_path / "built.onnx"
    assert "both versioned.onnx and the folder versioned/ exist: keep one" in found[("versioned", "1")].error
