"""Per-layer parity for any PyTorch reference: a user's network without ``parity_blocks()`` is
compared leaf module by leaf module, so a planted export bug is named at its layer, past
the convolution the exporter fused with its BatchNorm and across the image and audio
branches."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import rps_infer
from rps_infer import layers as layer_parity
from rps_infer.cli import main
from rps_infer.compare import compare
from rps_infer.convert.onnx_export import export_torch
from rps_infer.tensors import TensorSpec

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "user_cnn"
WIDTH = 4
SPECS = [TensorSpec("image", "float32", (None, 6, 32, 32)), TensorSpec("audio", "float32", (None, 32, 8, 8))]
BATCHES = (1, 3)


def _user_net() -> torch.nn.Module:
    """examples/user_cnn/mynet.py's Net, with BatchNorm statistics a trained net has (folding
    them into the convolution then changes its output: the exporter's fusion shows)."""
    spec = importlib.util.spec_from_file_location("user_cnn_mynet", EXAMPLE / "mynet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = module.Net(width=WIDTH).eval()
    bn = net.image[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return net


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return _user_net()


@pytest.fixture(scope="module")
def export(net, tmp_path_factory) -> onnx.ModelProto:
    """The legacy exporter's graph (it folds image.1, the BatchNorm, into image.0, the conv)."""
    path = tmp_path_factory.mktemp("cnn") / "net.onnx"
    export_torch(net, path, SPECS, ["output"], exporter="legacy", opset=17)
    return onnx.load(str(path))


def _scaled(model: onnx.ModelProto, weight: str, k: float = 1.01) -> onnx.ModelProto:
    planted = onnx.ModelProto()
    planted.CopyFrom(model)
    init = next((i for i in planted.graph.initializer if i.name == weight), None)
    assert init is not None, [i.name for i in planted.graph.initializer]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(k), init.name))
    return planted


def _audio_first(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with the audio branch's nodes first (as another exporter may order them)."""
    reordered = onnx.ModelProto()
    reordered.CopyFrom(model)
    nodes = list(reordered.graph.node)
    audio = [n for n in nodes if n.name.startswith("/audio/")]
    assert audio, [n.name for n in nodes]
    del reordered.graph.node[:]
    reordered.graph.node.extend(audio + [n for n in nodes if not n.name.startswith("/audio/")])
    onnx.checker.check_model(reordered)  # still topologically sorted
    return reordered


def test_a_correct_export_of_a_conv_bn_net_names_no_divergence(net, export):
    report = rps_infer.verify_models(net, export, input_specs=SPECS, batch_sizes=BATCHES)
    text = report.render(layers=True)
    assert report, text
    rows = {row.layer: row for row in report.shown.layers}
    assert list(rows)[:3] == ["image.0 (Conv2d)", "image.1 (BatchNorm2d)", "image.2 (ReLU)"], list(rows)
    assert "head.2 (Sigmoid)" in rows and all(not row.judged for row in rows.values())
    assert rows["image.0 (Conv2d)"].fused and not any(r.fused for k, r in rows.items() if k != "image.0 (Conv2d)")
    assert layer_parity.first_divergent(report.shown.layers) is None
    assert "every layer agrees (image.0 (Conv2d): fused by the exporter" in text, text
    assert re.search(r"^image\.0 \(Conv2d\) .* fused by the exporter into the next layer$", text, re.MULTILINE), text
    assert report.cause is None


@pytest.mark.parametrize(("weight", "layer", "agree_up_to"), [
    ("image.3.weight", "image.3 (Conv2d)", "image.2 (ReLU)"),  # after the fused conv + BN
    ("audio.0.weight", "audio.0 (Conv2d)", "image.4 (ReLU)"),  # the second branch, the first agreeing
    ("head.1.weight", "head.1 (Conv2d)", "head.0 (Upsample)"),  # the last convolution, before the sigmoid
])
def test_a_scaled_convolution_is_named_at_its_layer_with_its_cause(net, export, weight, layer, agree_up_to):
    report = rps_infer.verify_models(net, _scaled(export, weight), input_specs=SPECS, batch_sizes=BATCHES)
    text = report.render()
    assert not report, text
    # Only the conv the exporter folded its BatchNorm into is fused; a differing head.1 whose error
    # the sigmoid shrinks within the block allowance (image.3 planted) has a tensor of its own.
    assert [r.layer for r in report.shown.layers if r.fused] == ["image.0 (Conv2d)"], text
    assert f"layers agree up to the {agree_up_to} " in text and f"the first to differ is the {layer} " in text, text
    assert layer_parity.first_divergent(report.shown.layers).layer == layer
    assert f"likely cause: a scaled layer (k = 1.01): the {layer}'s weights times 1.01" in text, text


def test_a_scaled_convolution_the_exporter_folded_its_batchnorm_into_is_named_with_it(net, export):
    conv = next(n for n in export.graph.node if n.op_type == "Conv")  # image.0 with image.1 folded in
    report = rps_infer.verify_models(net, _scaled(export, conv.input[1]), input_specs=SPECS, batch_sizes=BATCHES)
    text = report.render()
    assert not report and not any(r.fused for r in report.shown.layers), text
    assert "the first layer compared, the image.0 (Conv2d), already differs" in text, text
    # Past the divergence each layer is still judged on its own tensor: its ReLU (which can only
    # shrink the BatchNorm's error) on the Relu's output, not on the BatchNorm's again.
    rows = {r.layer: r for r in report.shown.layers}
    assert rows["image.2 (ReLU)"].report.max_abs <= rows["image.1 (BatchNorm2d)"].report.max_abs * 1.0001, text
    assert ("likely cause: a scaled layer (k = 1.01): the image.0 (Conv2d)'s weights (folded with the "
            "BatchNorm2d after it) times 1.01") in text, text


def test_a_scaled_convolution_is_named_when_the_candidate_runs_the_audio_branch_first(net, export):
    correct = rps_infer.verify_models(net, _audio_first(export), input_specs=SPECS, batch_sizes=BATCHES)
    assert correct and "every layer agrees" in correct.render(layers=True), correct.render(layers=True)
    report = rps_infer.verify_models(net, _audio_first(_scaled(export, "image.3.weight")), input_specs=SPECS,
                                     batch_sizes=BATCHES)
    assert not report
    assert layer_parity.first_divergent(report.shown.layers).layer == "image.3 (Conv2d)", report.render()
    assert next(r for r in report.shown.layers if r.layer == "audio.0 (Conv2d)").passed, report.render()


def test_verify_names_the_layer_of_a_state_dict_checkpoint(net, export, tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, checkpoint)
    onnx.save(_scaled(export, "image.3.weight"), str(tmp_path / "planted.onnx"))
    code = main(["verify", str(checkpoint), str(tmp_path / "planted.onnx"), "--torch-model", "mynet:Net",
                 "--torch-kwargs", f'{{"width": {WIDTH}}}', "--python-path", str(EXAMPLE),
                 "--input-shape", "image=1x6x32x32", "--input-shape", "audio=1x32x8x8", "--batch-sizes", "1,3"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "the first to differ is the image.3 (Conv2d)" in out and "image.0 (Conv2d): fused by the exporter" in out
    assert "likely cause: a scaled layer (k = 1.01): the image.3 (Conv2d)'s weights times 1.01" in out, out


def _row(title: str, index: int, error: float) -> layer_parity.LayerRow:
    reference = np.linspace(1.0, 2.0, 8)
    report = compare({title: reference}, {title: reference + error}, layer_parity.BLOCK_TOLERANCE).outputs[0]
    return layer_parity.LayerRow(title, title, [8], f"t{index}", report, judged=False, index=index)


@pytest.mark.parametrize(("consumes", "taps", "fused"), [
    (True, 2, True),  # the conv's output exists nowhere: judged on the BatchNorm's tensor, which agrees
    (False, 2, False),  # the next row is another branch's first layer
    (True, 3, False),  # a tensor of its own lies before the next row's: the sigmoid hid its error
])
def test_only_a_layer_without_a_tensor_its_agreeing_successor_consumes_counts_as_fused(consumes, taps, fused):
    rows = [_row("relu", 0, 0.0), _row("conv", taps - 1, 0.5), _row("next", taps - 1, 0.0)]
    layer_parity.mark_fused(rows, [True, consumes], [(f"t{i}", np.zeros(8)) for i in range(taps)])
    assert rows[1].fused is fused
    assert (layer_parity.first_divergent(rows) is None) is fused


def test_a_chain_of_layers_folded_into_one_agreeing_tensor_is_fused_as_a_whole():
    # Conv, BatchNorm and ReLU computed as one tensor: the first two differ on it, the ReLU agrees.
    rows = [_row("conv", 0, 0.5), _row("bn", 0, 0.3), _row("relu", 0, 0.0), _row("next", 1, 0.5)]
    layer_parity.mark_fused(rows, [True, True, True], [("t0", np.zeros(8)), ("t1", np.zeros(8))])
    assert [r.fused for r in rows] == [True, True, False, False]
    assert layer_parity.first_divergent(rows).layer == "next"
