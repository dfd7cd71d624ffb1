"""Backend specs, precision variants, IO binding and the execution-provider settings.

GPU providers cannot run here; their settings are built (and the TensorRT INT8
calibration table written) without a session, so what a GPU runner would get is checked.
"""

import numpy as np
import pytest

from rps_infer.backends.onnxrt import OnnxRuntimeBackend
from rps_infer.backends.spec import CALIBRATION_TABLE, BackendSpec, cache_dir, variant_path
from rps_infer.compare import compare
from rps_infer.errors import ProviderUnavailableError, RpsInferError
from rps_infer.inputs import make_feeds
from rps_infer.runtime import open_backend


def test_backend_spec_parses_variants_into_options():
    spec = BackendSpec.parse("onnxrt-tensorrt:int8")
    assert (spec.backend, spec.device, spec.precision) == ("onnxrt", "tensorrt", "int8")
    assert spec.options() == {"precision": "int8"} and str(spec) == "onnxrt-tensorrt:int8"
    assert BackendSpec.parse("onnxrt-cuda:iobinding").options() == {"io_binding": True}
    assert BackendSpec.parse("pyt-cpu:channels_last:bf16").options() == {"channels_last": True, "precision": "bf16"}
    assert str(BackendSpec.parse("onnxrt-cpu").with_precision("fp16")) == "onnxrt-cpu:fp16"


@pytest.mark.parametrize(("text", "message"), [
    ("jax-cpu", "backend must be one of"),
    ("onnxrt-cpu:fp16:int8", "one precision at most"),
    ("onnxrt-cpu:bf16", "unknown variant"),
    ("pyt-cpu:int8", "unknown variant"),
])
def test_backend_spec_refuses_what_it_cannot_run(text, message):
    with pytest.raises(RpsInferError, match=message):
        BackendSpec.parse(text)


def test_with_precision_lowers_onnxrt_specs_only():
    assert str(BackendSpec.parse("pyt-cpu").with_precision("int8")) == "pyt-cpu"
    with pytest.raises(RpsInferError, match="no precision 'bf16'"):
        BackendSpec.parse("onnxrt-cpu").with_precision("bf16")


@pytest.mark.parametrize(("precision", "preset"), [("fp16", "image-fp16"), ("int8", "image-int8")])
def test_precision_variants_are_built_beside_the_model_and_keep_parity(built_zoo, precision, preset):
    entry = built_zoo["unet-ci"]
    plain = entry.backend("onnxrt-cpu")
    feeds = make_feeds(plain.input_specs, 2, seed=3, generator=entry.inputs)
    reference = plain.infer(feeds)
    backend = entry.backend(f"onnxrt-cpu:{precision}")
    result = compare(reference, backend.infer(feeds), preset)
    assert result.passed, str(result)
    assert backend.path == variant_path(entry.onnx_path, precision)
    assert backend.path.parent == cache_dir(entry.onnx_path) and backend.path.is_file()
    assert backend.describe()["precision"] == precision


def test_io_binding_on_cpu_equals_plain_run_and_times_its_phases(built_zoo):
    entry = built_zoo["unet-ci"]
    plain_backend = entry.backend("onnxrt-cpu")
    feeds = make_feeds(plain_backend.input_specs, 1, seed=4, generator=entry.inputs)
    plain = plain_backend.infer(feeds)
    bound = entry.backend("onnxrt-cpu:iobinding")
    np.testing.assert_array_equal(bound.infer(feeds)["output"], plain["output"])
    outputs, phases = bound.infer_phases(feeds)
    np.testing.assert_array_equal(outputs["output"], plain["output"])
    assert set(phases) == {"copy_in", "compute", "copy_out"} and all(s >= 0 for s in phases.values())
    assert phases["compute"] > 0
    with pytest.raises(ValueError, match="io_binding"):
        entry.backend("onnxrt-cpu").infer_phases(feeds)


def test_tensorrt_settings_name_fp16_int8_caches_and_a_calibration_table(built_zoo, tmp_path):
    entry = built_zoo["unet-ci"]
    backend = open_backend(entry.onnx_path, "onnxrt-tensorrt:int8", cache_dir=tmp_path / "trt", workspace_gb=1.5,
                           calibration_inputs="uniform")
    options = backend.provider_settings()
    assert backend.path == entry.onnx_path  # TensorRT quantizes itself: it gets the fp32 graph
    assert options["trt_fp16_enable"] == "1" and options["trt_int8_enable"] == "1"
    assert options["trt_engine_cache_enable"] == "1"
    assert options["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert options["trt_max_workspace_size"] == str(int(1.5 * 2**30))
    assert options["trt_int8_calibration_table_name"] == CALIBRATION_TABLE
    assert (tmp_path / "trt" / CALIBRATION_TABLE).stat().st_size > 0
    fp16 = OnnxRuntimeBackend(entry.onnx_path, "tensorrt", precision="fp16", cache_dir=tmp_path / "trt16")
    assert fp16.provider_settings()["trt_int8_enable"] == "0"


def test_cuda_and_openvino_settings(built_zoo):
    entry = built_zoo["unet-ci"]
    cuda = OnnxRuntimeBackend(entry.onnx_path, "cuda", cudnn_search="heuristic").provider_settings()
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC" and cuda["use_tf32"] == "0"
    openvino = OnnxRuntimeBackend(entry.onnx_path, "openvino", intra_op_threads=2).provider_settings()
    assert openvino["device_type"] == "CPU" and openvino["num_of_threads"] == "2"


@pytest.mark.parametrize("spec", ["onnxrt-cuda:iobinding", "onnxrt-tensorrt:fp16", "onnxrt-openvino",
                                  "onnxrt-coreml", "onnxrt-directml"])
def test_gpu_and_accelerator_providers_are_a_named_error_here(built_zoo, spec):
    import onnxruntime as ort

    device = BackendSpec.parse(spec).device
    provider = {"cuda": "CUDA", "tensorrt": "Tensorrt", "openvino": "OpenVINO", "coreml": "CoreML",
                "directml": "Dml"}[device] + "ExecutionProvider"
    if provider in ort.get_available_providers():
        pytest.skip(f"{provider} is available here: this test covers machines without it")
    with pytest.raises(ProviderUnavailableError, match=provider):
        built_zoo["unet-ci"].backend(spec).activate()


@pytest.mark.parametrize(("spec", "preset"), [("pyt-cpu:channels_last", "image-fp32"),
                                              ("pyt-cpu:bf16", "image-fp16")])
def test_pytorch_variants_keep_parity(built_zoo, spec, preset):
    entry = built_zoo["unet-ci"]
    eager = entry.backend("pyt-cpu")
    feeds = make_feeds(eager.input_specs, 1, seed=5, generator=entry.inputs)
    result = compare(eager.infer(feeds), entry.backend(spec).infer(feeds), preset)
    assert result.passed, str(result)


def test_serve_refuses_a_precision_the_backend_lacks(capsys):
    from rps_infer.cli import main

    assert main(["serve", "--backend", "pyt", "--precision", "int8", "--port", "0"]) != 0
    assert "--precision int8 is not offered by the pyt backend" in capsys.readouterr().err
