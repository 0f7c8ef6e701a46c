"""The study tower: one per-view encoder shared by all view tokens, then masked view fusion.

It relies only on the tower interface (``forward``, ``lock``, ``set_grad_checkpointing``), like open_clip's
visual towers; the per-view encoder is picked by ``VideoConfig.arch`` in ``build_view_encoder``.
"""

from __future__ import annotations

import torch
from torch import nn

from cmrclip.batch import TOKEN_NAMES, view_tokens
from cmrclip.config import VideoConfig
from cmrclip.video_cnn import FrameCnnEncoder
from cmrclip.video_vit import DividedSpaceTimeViT
from cmrclip.view_fusion import ViewFusion


def build_view_encoder(cfg: VideoConfig) -> nn.Module:
    if cfg.arch == "cnn":
        return FrameCnnEncoder(cfg)
    if cfg.arch == "vit":
        return DividedSpaceTimeViT(cfg)
    raise ValueError(f"unknown video arch {cfg.arch!r}; expected 'cnn' or 'vit'")


class StudyEncoder(nn.Module):
    """Batch dict (``cmrclip.batch.collate_studies``) -> ``[B, embed_dim]`` study vectors (not normalised)."""

    def __init__(self, cfg: VideoConfig, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.view_encoder = build_view_encoder(cfg)
        self.fusion = ViewFusion(cfg.width, len(TOKEN_NAMES), embed_dim, cfg.fusion)

    def _encode_present(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the view encoder on present tokens only (``frames [B, K, T, H, W]``) -> ``[B, K, width]``."""
        out = frames.new_zeros(*mask.shape, self.cfg.width)
        if mask.any():
            out[mask] = self.view_encoder(frames[mask]).to(out.dtype)
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = view_tokens(batch, self.cfg.variant, self.cfg.num_frames)
        cine = self._encode_present(tokens.cine, tokens.cine_mask)
        still = self._encode_present(tokens.still[:, :, None], tokens.still_mask)
        x = torch.cat([cine, still], dim=1)
        return self.fusion(x, torch.cat([tokens.cine_mask, tokens.still_mask], dim=1))

    def lock(self) -> None:
        """Freeze the whole tower (e.g. to fine-tune only the text side)."""
        for p in self.parameters():
            p.requires_grad = False

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if hasattr(self.view_encoder, "grad_checkpointing"):
            self.view_encoder.grad_checkpointing = enable
