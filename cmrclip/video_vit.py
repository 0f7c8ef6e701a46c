"""The paper-sized per-view encoder: ViT patches with divided space-time attention (TimeSformer-style).

Each block attends over time (the same patch across frames), then over space (the patches of one frame plus the
view's class token), then applies an MLP. Temporal embeddings and the temporal attention's output projection start
at zero, so at initialisation a block behaves like an image ViT block applied frame by frame.
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint
from torch import nn

from cmrclip.batch import resize_frames
from cmrclip.config import VideoConfig
from cmrclip.layers import Attention, Mlp


class DividedSpaceTimeBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_time = nn.LayerNorm(width)
        self.attn_time = Attention(width, heads)
        self.time_proj = nn.Linear(width, width)
        nn.init.zeros_(self.time_proj.weight)
        nn.init.zeros_(self.time_proj.bias)
        self.norm_space = nn.LayerNorm(width)
        self.attn_space = Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = Mlp(width, mlp_ratio)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cls [N, 1, W]`` and ``patches [N, T, P, W]`` -> the same shapes."""
        n, t, p, w = patches.shape
        xt = patches.transpose(1, 2).reshape(n * p, t, w)
        xt = self.time_proj(self.attn_time(self.norm_time(xt)))
        patches = patches + xt.reshape(n, p, t, w).transpose(1, 2)

        xs = torch.cat([cls.repeat_interleave(t, dim=0), patches.reshape(n * t, p, w)], dim=1)
        ys = self.attn_space(self.norm_space(xs))
        cls = cls + ys[:, :1].reshape(n, t, w).mean(dim=1, keepdim=True)
        patches = patches + ys[:, 1:].reshape(n, t, p, w)

        cls = cls + self.mlp(self.norm_mlp(cls))
        patches = patches + self.mlp(self.norm_mlp(patches))
        return cls, patches


class DividedSpaceTimeViT(nn.Module):
    """``[N, T, H, W]`` frames of one view token each -> ``[N, width]`` (the class token)."""

    def __init__(self, cfg: VideoConfig) -> None:
        super().__init__()
        vit = cfg.vit
        if cfg.image_size % vit.patch_size:
            raise ValueError(f"image_size {cfg.image_size} is not a multiple of patch_size {vit.patch_size}")
        self.image_size = cfg.image_size
        self.grad_checkpointing = False
        grid = cfg.image_size // vit.patch_size
        self.patch_embed = nn.Conv2d(1, cfg.width, vit.patch_size, stride=vit.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.randn(1 + grid * grid, cfg.width) * 0.02)
        self.time_embed = nn.Parameter(torch.zeros(cfg.num_frames, cfg.width))
        self.blocks = nn.ModuleList(
            [DividedSpaceTimeBlock(cfg.width, vit.heads, vit.mlp_ratio) for _ in range(vit.layers)]
        )
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        n, t = frames.shape[:2]
        if t > self.time_embed.shape[0]:
            raise ValueError(f"{t} frames given, the model was built for at most {self.time_embed.shape[0]}")
        frames = resize_frames(frames, self.image_size)
        patches = self.patch_embed(frames.reshape(n * t, 1, self.image_size, self.image_size))
        patches = patches.flatten(2).transpose(1, 2)  # [N*T, P, W]
        patches = patches.reshape(n, t, *patches.shape[1:]) + self.pos_embed[1:] + self.time_embed[:t, None, :]
        cls = (self.cls_token + self.pos_embed[:1]).expand(n, -1, -1)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                cls, patches = torch.utils.checkpoint.checkpoint(block, cls, patches, use_reentrant=False)
            else:
                cls, patches = block(cls, patches)
        return self.norm(cls[:, 0])
