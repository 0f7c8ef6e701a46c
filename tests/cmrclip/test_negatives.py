"""Laterality hard negatives: the swapped twin of a caption, and the loss that counts it as a wrong answer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from cmrclip.train.config import TrainConfig
from cmrclip.train.negatives import clip_loss_with_negatives, swap_laterality


@pytest.mark.parametrize(
    ("text", "twin"),
    [
        ("Dilated right ventricle.", "Dilated left ventricle."),
        ("LVEF 35 %, RVEDVi 120 ml/m2. LA dilated.", "RVEF 35 %, LVEDVi 120 ml/m2. RA dilated."),
        ("Left ventricular hypertrophy; LVOT normal.", "Right ventricular hypertrophy; RVOT normal."),
        ("Normal RV size, impaired LV.", "Normal LV size, impaired RV."),
        ("LGE in the LAD territory.", None),  # a coronary artery, not a side
        ("Small pericardial effusion.", None),
    ],
)
def test_swap_laterality(text: str, twin: str | None) -> None:
    assert swap_laterality(text) == twin


def _features(n: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_without_negatives_it_is_open_clips_loss() -> None:
    image, text, scale = _features(5, 0), _features(5, 1), torch.tensor(10.0)
    expected = ClipLoss()(image_features=image, text_features=text, logit_scale=scale)
    assert torch.allclose(clip_loss_with_negatives(ClipLoss(), image, text, None, scale), expected)


def test_a_negative_like_the_right_caption_costs_more_than_a_far_one() -> None:
    image, scale = _features(4, 0), torch.tensor(20.0)
    text = F.normalize(image + 0.3 * _features(4, 1), dim=-1)  # each study near its own caption
    base = clip_loss_with_negatives(ClipLoss(), image, text, None, scale)
    near_twins = F.normalize(image + 0.05 * _features(4, 2), dim=-1)
    close = clip_loss_with_negatives(ClipLoss(), image, text, near_twins, scale)
    far = clip_loss_with_negatives(ClipLoss(), image, text, _features(4, 3), scale)
    assert close > far >= base and close > base + 0.3


def test_checkpoints_from_before_train_without_them(tmp_path) -> None:
    recorded = {k: v for k, v in TrainConfig(out_dir=tmp_path).settings().items() if k != "laterality_negatives"}
    assert TrainConfig.from_training(recorded, out_dir=tmp_path).laterality_negatives is False
    assert TrainConfig(out_dir=tmp_path).laterality_negatives is True
