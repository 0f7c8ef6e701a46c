"""Training augmentations that keep anatomy: small affine jitter, intensity jitter, cine phase shift.

They run on a collated batch in torch (one ``grid_sample`` per view), drawing from an explicit generator so a
step's augmentation is reproducible from (seed, step) alone, which is what makes resumed runs deterministic.
Every frame of a cine gets the same spatial transform, so motion is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cmrclip.clips import CINE_VIEWS


@dataclass
class AugmentConfig:
    # largest in-plane rotation, degrees
    max_rotation_deg: float = 10.0
    # zoom range (1 = none)
    scale: tuple[float, float] = (0.9, 1.1)
    # largest translation, as a fraction of the frame side
    max_shift: float = 0.06
    # gamma range applied to intensities in [0, 1]
    gamma: tuple[float, float] = (0.8, 1.25)
    # intensity multiplier range
    intensity: tuple[float, float] = (0.9, 1.1)
    # standard deviation of additive Gaussian noise
    noise_std: float = 0.02
    # roll each cine by a random number of frames (off for the static variant: frame 0 must stay end-diastole)
    temporal_roll: bool = True


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random rotation/zoom/shift of ``[N, C, H, W]``, one transform per item shared by its C channels."""
    n = x.shape[0]
    angle = _uniform(n, -1, 1, generator) * math.radians(cfg.max_rotation_deg)
    scale = 1 / _uniform(n, *cfg.scale, generator)
    shift = _uniform(2 * n, -1, 1, generator).reshape(n, 2) * 2 * cfg.max_shift
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _intensity(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    gamma = _uniform(x.shape[0], *cfg.gamma, generator).reshape(shape)
    gain = _uniform(x.shape[0], *cfg.intensity, generator).reshape(shape)
    noise = torch.randn(x.shape, generator=generator) * cfg.noise_std
    return x.clamp(min=0).pow(gamma) * gain + noise


def _roll_frames(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll ``[N, T, H, W]`` cines along T by a random shift per item."""
    n, t = x.shape[:2]
    shift = torch.randint(0, t, (n, 1), generator=generator)
    index = (torch.arange(t)[None, :] + shift) % t
    return torch.gather(x, 1, index[:, :, None, None].expand_as(x))


def augment_batch(
    batch: dict[str, torch.Tensor], cfg: AugmentConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A new batch dict with every image view augmented (masks and counts are passed through)."""
    out = dict(batch)
    for view, x in batch.items():
        if x.dtype != torch.float32:
            continue
        size = x.shape[-2:]
        # Group so that one item = one cine (all frames share the transform) or one still image.
        items = x.reshape(-1, x.shape[-3], *size) if view in CINE_VIEWS else x.reshape(-1, 1, *size)
        if view in CINE_VIEWS and cfg.temporal_roll:
            items = _roll_frames(items, generator)
        items = _intensity(_affine(items, cfg, generator), cfg, generator)
        out[view] = items.reshape(x.shape)
    return out
