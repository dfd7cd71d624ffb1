"""The backend contract and each runtime's device handling."""

import numpy as np
import pytest

from rps_infer.backends.onnxrt import DEVICE_PROVIDERS, OnnxRuntimeBackend
from rps_infer.backends.pyt import TorchBackend
from rps_infer.errors import InputMismatchError, ProviderUnavailableError
from rps_infer.formats import gojson, open_model
from rps_infer.game import realistic_positions
from rps_infer.nets.mlp import random_weights
from rps_infer.runtime import open_backend

from .onnx_graphs import mlp_graph


@pytest.fixture(scope="module")
def policy_files(tmp_path_factory):
    from rps_infer.convert import convert

    d = tmp_path_factory.mktemp("backends")
    w = random_weights(np.random.default_rng(0), "policy", hidden_size=16)
    src = gojson.write(w, d / "p.json")
    return {"numpy": src, "onnxrt": mlp_graph(w, d / "p.onnx"),
            "pyt": convert(src, "torch", d / "p.pt").path, "tf": convert(src, "keras", d / "p.keras").path}


@pytest.mark.parametrize("name", ["numpy", "onnxrt", "pyt", "tf"])
def test_backend_contract(policy_files, name):
    with open_backend(policy_files[name]) as backend:
        assert backend.name == name
        (spec,) = backend.input_specs
        assert (spec.name, spec.dtype, spec.shape) == ("input", "float32", (None, 81))
        assert backend.output_names == ("output",)
        for batch in (1, 7):
            out = backend.infer({"input": realistic_positions(batch)})
            assert list(out) == ["output"] and out["output"].shape == (batch, 9)
        info = backend.describe()
        assert {"backend", "device", "framework", "version"} <= set(info)
        assert info["inputs"] == ["input: float32[batch, 81]"]


@pytest.mark.parametrize("name", ["numpy", "onnxrt", "pyt", "tf"])
@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"input": realistic_positions(2).astype(np.float64)}, "expected float32, got float64"),
        ({"input": np.zeros((2, 80), np.float32)}, r"expected shape \[N, 81\], got \[2, 80\]"),
        ({"input": np.zeros(81, np.float32)}, "expected shape"),
        ({"features": np.zeros((2, 81), np.float32)}, r"expected inputs \['input'\]"),
        ({"input": [[0.0] * 81]}, "expected float32, got list"),
    ],
    ids=["float64", "wrong-width", "no-batch-dim", "wrong-name", "not-an-array"],
)
def test_wrong_inputs_raise_input_mismatch_not_a_silent_cast(policy_files, name, feeds, message):
    backend = open_backend(policy_files[name])
    with pytest.raises(InputMismatchError, match=message):
        backend.infer(feeds)


def test_onnxrt_session_options_are_applied(policy_files):
    backend = OnnxRuntimeBackend(policy_files["onnxrt"], intra_op_threads=1, inter_op_threads=1,
                                 graph_optimization="basic", spinning=False).activate()
    options = backend.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert backend.describe()["active_providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize("device", [d for d in DEVICE_PROVIDERS if d != "cpu"])
def test_onnxrt_gpu_provider_is_never_a_silent_cpu_fallback(policy_files, device):
    import onnxruntime as ort

    if DEVICE_PROVIDERS[device] in ort.get_available_providers():
        pytest.skip(f"{DEVICE_PROVIDERS[device]} is available here; see the GPU parity tests")
    with pytest.raises(ProviderUnavailableError, match=DEVICE_PROVIDERS[device]):
        OnnxRuntimeBackend(policy_files["onnxrt"], device).activate()
    fallback = OnnxRuntimeBackend(policy_files["onnxrt"], device, allow_fallback=True).activate()
    assert fallback.describe()["active_providers"] == ["CPUExecutionProvider"]


def test_unknown_devices_are_refused(policy_files):
    with pytest.raises(ProviderUnavailableError, match="unknown onnxrt device"):
        OnnxRuntimeBackend(policy_files["onnxrt"], "tpu")
    with pytest.raises(ProviderUnavailableError, match="unknown pyt device"):
        TorchBackend(policy_files["pyt"], "mps")


def test_pyt_cuda_without_gpu_is_a_clear_error(policy_files):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ProviderUnavailableError, match="no CUDA GPU"):
        open_backend(policy_files["pyt"], "pyt-cuda").activate()


def test_tf_cuda_without_gpu_is_a_clear_error(policy_files):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU")
    with pytest.raises(ProviderUnavailableError, match="sees no GPU"):
        open_backend(policy_files["tf"], "tf-cuda").activate()


def test_pyt_threads_and_compile_options(policy_files):
    import torch

    before = torch.get_num_threads()
    try:
        backend = open_backend(policy_files["pyt"], "pyt", threads=1).activate()
        assert backend.describe()["threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_a_go_json_model_runs_on_every_framework_backend(policy_files):
    model = open_model(policy_files["numpy"])
    x = {"input": realistic_positions(3)}
    outs = {name: open_backend(model, name).infer(x)["output"] for name in ("numpy", "pyt", "tf")}
    assert outs["numpy"].dtype == np.float64 and outs["pyt"].dtype == np.float32


@pytest.mark.slow
def test_pyt_torch_compile_keeps_parity(policy_files):
    from rps_infer.verify import compare_backends

    model = open_model(policy_files["pyt"])
    reference = open_backend(policy_files["numpy"])
    compiled = open_backend(model, "pyt", compile=True)
    report = compare_backends(reference, compiled, batch_sizes=(1, 5), weights=model.weights)
    assert report, str(report)
    assert compiled.describe()["compile"] is True
