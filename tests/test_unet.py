"""The lipsync U-Net: its size, its configuration rules, and verify catching a broken export."""

import pytest
import torch

from rps_infer.cli import main
from rps_infer.convert import onnx_export
from rps_infer.formats import open_model, torchfile
from rps_infer.nets.unet import LipsyncUNet, UNetConfig, parameter_count, seeded


def test_full_size_model_has_exactly_12_186_935_parameters():
    assert parameter_count(LipsyncUNet(UNetConfig(width=1.0, size=320, audio=16))) == 12_186_935


def test_ci_variant_runs_and_keeps_the_image_size():
    model = seeded(UNetConfig(width=0.125, size=128, audio=4))
    with torch.inference_mode():
        out = model(torch.rand(2, 6, 128, 128), torch.rand(2, 32, 4, 4))
    assert out.shape == (2, 3, 128, 128) and float(out.min()) > 0 and float(out.max()) < 1
    assert min(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)) >= 3


@pytest.mark.parametrize(("size", "audio"), [(320, 4), (128, 16), (100, 4)])
def test_image_and_audio_must_meet_at_the_bottleneck(size, audio):
    with pytest.raises(ValueError, match="bottleneck"):
        LipsyncUNet(UNetConfig(width=0.125, size=size, audio=audio))


def test_verify_proves_the_unet_export_and_rejects_a_bn_folding_bug(built_zoo, tmp_path, capsys):
    entry = built_zoo["unet-ci"]
    source, export = entry.artifacts()["pt"], entry.onnx_path
    assert main(["verify", str(source), str(export), "--tolerance", "image-fp32", "--batch-sizes", "1,2",
                 "--layers"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "every layer agrees" in out and "bottleneck fuse" in out
    broken = torchfile.read_module(open_model(source))
    bn = next(m for m in broken.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_var.fill_(1.0)  # as if an exporter folded BN with identity statistics
    inputs, outputs = broken.io_specs()
    onnx_export.export_torch(broken, tmp_path / "broken.onnx", inputs, [s.name for s in outputs])
    assert main(["verify", str(source), str(tmp_path / "broken.onnx"), "--tolerance", "image-fp32",
                 "--batch-sizes", "1"]) == 1
    captured = capsys.readouterr()
    assert "PSNR" in captured.err
    # Named at its block, with the cause: the first BatchNorm of the encoder's first block.
    assert "the first layer compared, the encoder inc, already differs" in captured.out, captured.out
    assert ("likely cause: batch-norm statistics or epsilon: block 'encoder inc' matches with its BatchNorm "
            "'body.1' running_var set to 1") in captured.out


def test_cpu_int8_quantization_keeps_psnr_above_35_db(built_zoo, tmp_path):
    from rps_infer.convert.quantize import quantize_int8

    entry = built_zoo["unet-ci"]
    report = quantize_int8(entry.onnx_path, tmp_path / "unet-int8.onnx", generator="uniform")
    psnr = min(o.psnr_db for r in report.results.values() for o in r.outputs)
    assert report and psnr >= 35.0 and (tmp_path / "unet-int8.onnx").is_file()
