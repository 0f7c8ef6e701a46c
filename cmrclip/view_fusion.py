"""Fusion of view tokens into one study vector by masked attention pooling.

Each token gets a learned embedding saying which view (and SAX level / LGE slot) it is. A learned "study" token is
always present, so a study with no usable view still gets a defined vector rather than NaN from an all-masked
softmax. Missing views are excluded from attention by the key mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmrclip.config import FusionConfig
from cmrclip.layers import TransformerBlock


class ViewFusion(nn.Module):
    def __init__(self, width: int, num_tokens: int, embed_dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.view_embed = nn.Parameter(torch.randn(num_tokens, width) * 0.02)
        self.study_token = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList([TransformerBlock(width, cfg.heads) for _ in range(cfg.layers)])
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.heads = cfg.heads
        self.pool_kv = nn.Linear(width, 2 * width)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``tokens [B, N, W]`` with ``mask [B, N]`` (True = view present) -> ``[B, embed_dim]``."""
        b, _, w = tokens.shape
        x = torch.cat([self.study_token.expand(b, -1, -1), tokens + self.view_embed], dim=1)
        key_mask = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        for block in self.blocks:
            x = block(x, key_mask)
        k, v = self.pool_kv(x).chunk(2, dim=-1)
        h = self.heads
        q = self.query.expand(b, -1, -1).reshape(b, 1, h, w // h).transpose(1, 2)
        k = k.reshape(b, -1, h, w // h).transpose(1, 2)
        v = v.reshape(b, -1, h, w // h).transpose(1, 2)
        pooled = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        pooled = pooled.transpose(1, 2).reshape(b, w)
        return self.proj(self.dropout(self.norm(pooled)))
