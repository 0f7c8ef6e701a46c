"""Laterality hard negatives: each caption's left/right-swapped twin, added to the batch as a text no study matches.

Sentence embeddings hardly tell the two ventricles apart: the cosine between "dilated right ventricle" and "dilated
left ventricle" is 0.98 for the pretrained MiniLM and still 0.98 after contrastive training on a few hundred studies
(at 1x, 3x and 10x the text learning rate), so an RV prompt scores LV findings. Random in-batch negatives rarely
differ by one word; NegCLIP (Yuksekgonul et al., ICLR 2023) fixes such word-order and attribute blindness by adding
minimally edited captions as negatives. Here the edit is the side: "left" <-> "right", "LV..." <-> "RV...",
"LA" <-> "RA".
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

_WORDS = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_ABBREVIATIONS = re.compile(r"\b([LR])(V[A-Za-z]*|A)\b")
_WORD_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


def swap_laterality(text: str) -> str | None:
    """The caption with left and right exchanged, or None when it names no side."""
    swapped = _WORDS.sub(lambda m: _WORD_SWAP[m.group(1)], text)
    swapped = _ABBREVIATIONS.sub(lambda m: ("R" if m.group(1) == "L" else "L") + m.group(2), swapped)
    return swapped if swapped != text else None


def clip_loss_with_negatives(
    loss_fn: ClipLoss, image_features: torch.Tensor, text_features: torch.Tensor,
    negative_features: torch.Tensor | None, logit_scale: torch.Tensor,
) -> torch.Tensor:
    """``loss_fn`` (open_clip's ``ClipLoss``) with extra negative texts on the study-to-text side: each study must
    pick its own caption among the batch's captions and every swapped twin. Without negatives it is ``loss_fn``."""
    if negative_features is None:
        return loss_fn(image_features=image_features, text_features=text_features, logit_scale=logit_scale)
    per_image, per_text = loss_fn.get_logits(image_features, text_features, logit_scale)
    per_image = torch.cat([per_image, logit_scale * image_features @ negative_features.T], dim=1)
    labels = loss_fn.get_ground_truth(image_features.device, per_image.shape[0])
    return (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
