"""A user's own network: a small image + audio CNN shaped like the lipsync model (image
[B, 6, H, W] and audio [B, 32, 16, 16] in, an image [B, 3, H, W] out, for H = W = 64)."""

import torch
from torch import nn


class Net(nn.Module):
    """Encode the image (stride 2), add the encoded audio, decode to 3 channels in [0, 1]."""

    def __init__(self, width: int = 16, n_channels: int = 6) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(n_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1, stride=2), nn.ReLU())
        self.audio = nn.Sequential(nn.Conv2d(32, width, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2))
        self.head = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.image(image) + self.audio(audio))
