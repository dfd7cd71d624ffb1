"""The lipsync U-Net: image [B, 6, H, W] + audio [B, 32, A, A] -> image [B, 3, H, W].

Our own PyTorch implementation of the structure in the product brief, built from
inverted-residual blocks (IR) and pairs of them. At width 1 and 320 px it has
12,186,935 parameters; ``width`` scales every channel count (at least 4; the audio
input keeps 32 channels) for a CI-sized variant. Importing this module imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual name

CHANNELS = (32, 64, 128, 256, 512)
AUDIO_CHANNELS = 32
RESIDUAL_BRANCH_SCALE = 0.1  # seeded weights: the projection conv of every IR block


@dataclass(frozen=True)
class UNetConfig:
    """Width multiplier, image size and audio size; the encoder bottleneck (size / 32) must
    equal the audio branch output floor((audio + 3) / 2) + 1 (320 px with 16x16 audio)."""

    width: float = 1.0
    size: int = 320
    audio: int = 16

    def channels(self, c: int) -> int:
        """round(width * c), at least 4."""
        return max(4, round(self.width * c))

    def check(self) -> None:
        """Raise ValueError when image and audio sizes do not meet at the bottleneck."""
        bottleneck, audio_out = self.size / 32, (self.audio + 3) // 2 + 1
        if self.size % 32 or bottleneck != audio_out:
            raise ValueError(f"image {self.size} px gives a {bottleneck} bottleneck but {self.audio}x{self.audio} "
                             f"audio gives {audio_out}; use size = 32 * (floor((audio + 3) / 2) + 1)")


class IR(nn.Module):
    """1x1 expand (x2) -> BN -> ReLU -> 3x3 depthwise (stride) -> BN -> ReLU -> 1x1 project -> BN,
    plus the input when stride is 1 and channels are unchanged; no activation after the add."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        hidden = 2 * cin
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        y = self.body(x)
        return x + y if self.residual else y


def pair(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """IR(cin -> cout, stride) then IR(cout -> cout) with its residual."""
    return nn.Sequential(IR(cin, cout, stride), IR(cout, cout))


def conv_bn_relu(cin: int, cout: int, stride: int, padding: int) -> nn.Sequential:
    """3x3 convolution with bias, BN, ReLU (the audio branch's plain convolutions)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LipsyncUNet(nn.Module):
    """Inputs ``image`` [B, 6, H, W] (two BGR frames in [0, 1]) and ``audio`` [B, 32, A, A];
    output [B, 3, H, W] in (0, 1)."""

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        config.check()
        self.config = config
        c1, c2, c3, c4, c5 = (config.channels(c) for c in CHANNELS)
        self.inc = IR(6, c1)
        self.down = nn.ModuleList([pair(c1, c1, 2), pair(c1, c2, 2), pair(c2, c3, 2), pair(c3, c4, 2),
                                   pair(c4, c5, 2)])
        self.audio = nn.Sequential(
            IR(AUDIO_CHANNELS, c2), IR(c2, c3), conv_bn_relu(c3, c4, 1, 1), IR(c4, c4),
            conv_bn_relu(c4, c5, 2, 3), IR(c5, c5), IR(c5, c5),
        )
        self.fuse = nn.Sequential(pair(2 * c5, c5), pair(c5, c4))
        self.up = nn.ModuleList([pair(c4 + c4, c3), pair(c3 + c3, c2), pair(c2 + c2, c1), pair(c1 + c1, c1),
                                 pair(c1 + c1, config.channels(16))])
        self.out = nn.Conv2d(config.channels(16), 3, 1)

    def io_specs(self):
        """(input specs, output specs) as rps_infer TensorSpecs; batch is dynamic."""
        from rps_infer.tensors import TensorSpec

        c = self.config
        return ((TensorSpec("image", "float32", (None, 6, c.size, c.size)),
                 TensorSpec("audio", "float32", (None, AUDIO_CHANNELS, c.audio, c.audio))),
                (TensorSpec("output", "float32", (None, 3, c.size, c.size)),))

    def parity_blocks(self) -> list[tuple[str, nn.Module]]:
        """The blocks ``verify`` compares one by one, in execution order: encoder, audio
        encoder, bottleneck, decoder, output convolution."""
        return [("encoder inc", self.inc), *((f"encoder down.{i}", b) for i, b in enumerate(self.down)),
                ("audio encoder", self.audio), ("bottleneck fuse", self.fuse),
                *((f"decoder up.{i}", b) for i, b in enumerate(self.up)), ("output conv", self.out)]

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """See the class docstring."""
        skips = [self.inc(image)]
        for block in self.down:
            skips.append(block(skips[-1]))
        x = self.fuse(torch.cat([skips[-1], self.audio(audio)], dim=1))
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            dy, dx = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
            x = block(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x))


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())


def seeded(config: UNetConfig, seed: int = 0) -> LipsyncUNet:
    """A model in eval mode with seeded weights and non-trivial BatchNorm statistics, so
    exporters' BN folding is exercised (identity statistics would hide a folding bug)."""
    generator = torch.Generator().manual_seed(seed)
    model = LipsyncUNet(config)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.05)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
        # Trained residual nets keep their branches small; random full-size branches make the
        # net chaotic, amplifying any perturbation (INT8 rounding gave 15-18 dB PSNR with
        # them, 45 dB with branches scaled by 0.1).
        for block in model.modules():
            if isinstance(block, IR):
                block.body[6].weight.mul_(RESIDUAL_BRANCH_SCALE)
    model.eval()
    _calibrate_output(model, generator)
    return model


def _calibrate_output(model: LipsyncUNet, generator: torch.Generator) -> None:
    """Rescale the last 1x1 convolution so the pre-sigmoid logits have mean 0 and std 1.5 on
    random inputs: random deep weights otherwise saturate most pixels at 0 or 1, where any
    export, right or wrong, agrees."""
    c = model.config
    image = torch.rand((2, 6, c.size, c.size), generator=generator)
    audio = torch.rand((2, AUDIO_CHANNELS, c.audio, c.audio), generator=generator)
    with torch.no_grad():
        captured = {}
        hook = model.out.register_forward_hook(lambda mod, args, out: captured.setdefault("logits", out))
        model(image, audio)
        hook.remove()
        logits = captured["logits"]
        scale = 1.5 / float(logits.std())
        model.out.weight.mul_(scale)
        model.out.bias.mul_(scale).sub_(float(logits.mean()) * scale)
