"""The CPU-sized per-view encoder: a small 2D CNN per frame, then temporal convolutions and statistics pooling.

Cost is kept low by pooling frames to half size before the stem, stride-2 stages with few channels, channels-last
memory, and factorising space (per-frame 2D convs) from time (1D convs over per-frame vectors). Motion enters in
two ways: the stem sees each frame next to its difference from the cine's mean frame, and the temporal head pools
the standard deviation over time (how much each feature moves) besides the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmrclip.config import VideoConfig


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class TemporalResidual(nn.Module):
    """A residual 1D convolution over frames; circular padding because a cine is one cardiac cycle."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, padding_mode="circular")
        self.norm = nn.GroupNorm(1, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class FrameCnnEncoder(nn.Module):
    """``[N, T, H, W]`` frames of one view token each -> ``[N, width]``."""

    def __init__(self, cfg: VideoConfig) -> None:
        super().__init__()
        cnn = cfg.cnn
        self.downsample = cnn.downsample
        layers: list[nn.Module] = []
        cin = 2  # the frame and its difference from the cine's mean frame
        for i, cout in enumerate(cnn.channels):
            layers.append(_conv_bn(cin, cout, stride=2))
            if i > 0:
                layers.append(_conv_bn(cout, cout, stride=1))
            cin = cout
        self.stem = nn.Sequential(*layers)
        side = cfg.image_size // cnn.downsample // 2 ** len(cnn.channels)
        if side < 1:
            raise ValueError(f"image_size {cfg.image_size} is too small for {len(cnn.channels)} stride-2 stages")
        # Flattening the final map (instead of global pooling) keeps where in the frame a feature is: regional
        # wall motion is about which wall moves.
        self.frame_proj = nn.Linear(cin * side * side, cfg.width)
        self.temporal = nn.Sequential(
            *[TemporalResidual(cfg.width, cnn.temporal_kernel) for _ in range(cnn.temporal_layers)]
        )
        self.temporal_reach = cnn.temporal_kernel // 2
        self.pool_proj = nn.Sequential(nn.Linear(2 * cfg.width, cfg.width), nn.LayerNorm(cfg.width))
        self.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        n, t, h, w = frames.shape
        if self.downsample > 1:
            frames = F.avg_pool2d(frames, self.downsample)
        motion = frames - frames.mean(dim=1, keepdim=True)
        x = torch.stack([frames, motion], dim=2).reshape(n * t, 2, *frames.shape[-2:])
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        x = self.frame_proj(x.flatten(1)).reshape(n, t, -1).transpose(1, 2)  # [N, width, T]
        if t > self.temporal_reach:  # circular padding needs at least as many frames as it pads
            x = self.temporal(x)
        stats = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)
        return self.pool_proj(stats)
