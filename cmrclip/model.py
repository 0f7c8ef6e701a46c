"""CMR-CLIP: a study (video) tower and a text tower mapping into one L2-normalised embedding space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cmrclip.config import ModelConfig
from cmrclip.text_tower import build_text_tower
from cmrclip.video_tower import StudyEncoder

MAX_LOGIT_SCALE = math.log(100.0)


class CMRClip(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained_text: bool = True) -> None:
        super().__init__()
        self.config = cfg
        self.visual = StudyEncoder(cfg.video, cfg.embed_dim)
        self.text, self.tokenizer = build_text_tower(cfg.text, cfg.embed_dim, pretrained=pretrained_text)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.init_logit_scale))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def encode_studies(self, batch: dict[str, torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Batch dict from ``collate_studies`` -> ``[B, D]`` study embeddings."""
        features = self.visual({k: v.to(self.device) for k, v in batch.items()})
        return F.normalize(features, dim=-1) if normalize else features

    def encode_texts(self, texts: list[str] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Texts (or token ids from ``self.tokenizer``) -> ``[B, D]`` text embeddings."""
        tokens = self.tokenizer(texts) if not isinstance(texts, torch.Tensor) else texts
        features = self.text(tokens.to(self.device))
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, batch: dict[str, torch.Tensor], texts: list[str] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns what open_clip's ``ClipLoss`` takes, so ``loss(**model(batch, texts))`` works."""
        return {
            "image_features": self.encode_studies(batch),
            "text_features": self.encode_texts(texts),
            "logit_scale": self.logit_scale.exp(),
        }

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the temperature in CLIP's range (logit scale at most 100); call after each optimiser step."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        self.text.set_grad_checkpointing(enable)
