"""Training augmentations that keep anatomy and motion: geometry and intensity jitter, plus MR artefacts (TorchIO).

Two layers, split by what they cost on 2 CPU cores (measured per 16-frame 64 px cine, one thread, TorchIO 1.2):

- *jitter*, on every series of every study, batched in torch (one ``grid_sample`` per view for rotation, zoom,
  shift and a small elastic warp; gain, gamma and Gaussian noise; a cine phase shift). A whole batch of 32
  studies costs a few tens of ms.
- *what an archive holds*: some cines cut to 2-4 phases and resampled back as ingest resamples a short cine, and
  some studies reduced to their short-axis stack (research exports often hold nothing else), so a model trained
  on full phantom studies still reads a SAX-only study with ED/ES frames.
- *MR artefacts* from TorchIO (bias field, ghosting, k-space spikes, noise, blur, gamma; motion and elastic
  deformation on LGE stills), each present series getting one with probability ``artefact_prob``. TorchIO works
  on one image at a time: bias field ~1.5 ms, noise 2, gamma 1.5, spike 6, ghosting 8, blur 8.5 ms per cine, but
  its motion model resamples every frame through SimpleITK (66 ms per cine, 4-6 ms per still) and so does its
  elastic warp (136 ms per cine); those two run on the single-frame LGE series only, where failed breath-holds
  show in real archives, and ghosting stands for periodic motion in cines.

Every frame of a series gets the same transform, so the motion between frames is what the scan had. All draws
come from the step's generator (TorchIO's own draws are seeded from it per series), so a step's augmentation is a
function of (seed, step) alone: that is what makes a resumed run end with the same weights as an uninterrupted
one. Augmentation runs only in the training loop; validation and evaluation see the clips as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from cmrclip.clips import CINE_VIEWS, MODEL_VIEWS

# TorchIO artefacts and whether they run on cines too (False: LGE stills only, see the module docstring).
ARTEFACTS: dict[str, bool] = {
    "bias_field": True, "ghosting": True, "spike": True, "noise": True, "blur": True, "gamma": True,
    "motion": False, "elastic": False,
}


# Fields added after checkpoints were first written: a recorded config without them was trained without them.
ADDED_LATER = ("short_cine_prob", "sax_only_prob")


def _default_weights() -> dict[str, float]:
    return dict.fromkeys(ARTEFACTS, 1.0)


@dataclass
class AugmentConfig:
    # False: batches pass through untouched
    enabled: bool = True
    # largest in-plane rotation, degrees
    max_rotation_deg: float = 10.0
    # zoom range (1 = none). Kept small: clips are resampled to a fixed spacing so that size means millimetres, and
    # a 10 % zoom moves a normal LV's cavity area past the dilatation threshold (LVEDVi 88 -> 100 is ~4 % in radius)
    scale: tuple[float, float] = (0.97, 1.03)
    # largest translation, as a fraction of the frame side
    max_shift: float = 0.06
    # largest displacement of the smooth elastic warp, as a fraction of the frame side (0: none)
    elastic: float = 0.015
    # gamma range applied to intensities in [0, 1]
    gamma: tuple[float, float] = (0.8, 1.25)
    # intensity multiplier range
    intensity: tuple[float, float] = (0.9, 1.1)
    # standard deviation of additive Gaussian noise
    noise_std: float = 0.02
    # roll each cine by a random number of frames (the loop turns it off for the static variant, whose frame 0
    # must stay end-diastole)
    temporal_roll: bool = True
    # share of cine series cut to 2-4 evenly spaced phases and resampled back to every frame, as ingest does with
    # the short cines of research exports (end-diastole and end-systole only)
    short_cine_prob: float = 0.1
    # share of studies that keep their short-axis stack only (research archives and SAX-only exports); the other
    # views are marked absent for that step
    sax_only_prob: float = 0.1
    # probability that a present series gets one TorchIO MR artefact (0: none)
    artefact_prob: float = 0.1
    # relative weights of the artefacts (keys of ARTEFACTS); 0 turns one off
    artefact_weights: dict[str, float] = field(default_factory=_default_weights)

    def __post_init__(self) -> None:
        unknown = set(self.artefact_weights) - set(ARTEFACTS)
        if unknown:
            raise ValueError(f"unknown artefacts {sorted(unknown)}; expected some of {sorted(ARTEFACTS)}")
        self.scale, self.gamma, self.intensity = tuple(self.scale), tuple(self.gamma), tuple(self.intensity)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """The config a checkpoint or train state recorded; augmentations added since are off for it, as they were."""
        return cls(**{**dict.fromkeys(ADDED_LATER, 0.0), **data})


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _geometry(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random rotation/zoom/shift and a smooth elastic warp of ``[N, C, H, W]``, one per item for its C channels."""
    n = x.shape[0]
    angle = _uniform(n, -1, 1, generator) * math.radians(cfg.max_rotation_deg)
    scale = 1 / _uniform(n, *cfg.scale, generator)
    shift = _uniform(2 * n, -1, 1, generator).reshape(n, 2) * 2 * cfg.max_shift
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if cfg.elastic > 0:  # a 4x4 random displacement field, upsampled smoothly (grid units span 2 per side)
        coarse = torch.randn((n, 2, 4, 4), generator=generator) * (2 * cfg.elastic)
        field_ = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=True)
        grid = grid + field_.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _intensity(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    gamma = _uniform(x.shape[0], *cfg.gamma, generator).reshape(shape)
    gain = _uniform(x.shape[0], *cfg.intensity, generator).reshape(shape)
    noise = torch.randn(x.shape, generator=generator) * cfg.noise_std
    return x.clamp(min=0).pow(gamma) * gain + noise


def _short_cines(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Cut some cines of ``[N, T, H, W]`` to k = 2..4 evenly spaced phases, then resample back to T frames linearly
    over the periodic cycle (what ingest does to a short cine)."""
    n, t = x.shape[:2]
    hit = torch.rand(n, generator=generator) < prob
    ks = torch.randint(2, 5, (n,), generator=generator)
    out = x.clone()
    for i in torch.nonzero(hit).flatten().tolist():
        k = int(ks[i])
        phases = x[i, (torch.arange(k) * t) // k]  # [k, H, W]
        pos = torch.arange(t, dtype=torch.float32) * k / t
        lo = pos.floor().long()
        w = (pos - lo)[:, None, None]
        out[i] = phases[lo % k] * (1 - w) + phases[(lo + 1) % k] * w
    return out


def _sax_only(batch: dict[str, torch.Tensor], prob: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Mark every view but the short-axis stack absent in a share of the studies that have one."""
    present = batch["present"]
    sax = MODEL_VIEWS.index("sax")
    hit = (torch.rand(len(present), generator=generator) < prob) & present[:, sax]
    if not bool(hit.any()):
        return batch
    keep = torch.zeros_like(present)
    keep[:, sax] = True
    return {**batch, "present": torch.where(hit[:, None], present & keep, present)}


def _roll_frames(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Roll ``[N, T, H, W]`` cines along T by a random shift per item."""
    n, t = x.shape[:2]
    shift = torch.randint(0, t, (n, 1), generator=generator)
    index = (torch.arange(t)[None, :] + shift) % t
    return torch.gather(x, 1, index[:, :, None, None].expand_as(x))


@lru_cache(maxsize=1)
def _torchio_transforms() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The TorchIO transforms, built once. Ranges are for clips normalised to [0, 1] at ~1.5 mm per pixel."""
    import SimpleITK as sitk
    import torchio as tio

    # ITK starts a thread pool per filter call; for 64 px images that costs more than the work (4x faster).
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    return {
        "bias_field": tio.RandomBiasField(coefficients=0.3, order=3),
        "ghosting": tio.RandomGhosting(num_ghosts=(2, 8), axes=(0, 1), intensity=(0.15, 0.6)),
        "spike": tio.RandomSpike(num_spikes=(1, 2), intensity=(0.05, 0.3)),
        "noise": tio.RandomNoise(std=(0.01, 0.08)),
        "blur": tio.RandomBlur(std=(0.3, 1.2)),
        "gamma": tio.RandomGamma(log_gamma=(-0.4, 0.4)),
        "motion": tio.RandomMotion(degrees=4, translation=4, num_transforms=2),
        "elastic": tio.RandomElasticDeformation(num_control_points=7, max_displacement=(3, 3, 0)),
    }


def _artefacts(
    items: torch.Tensor, present: torch.Tensor, cine: bool, cfg: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """One TorchIO artefact on each present series of ``items [N, C, H, W]`` chosen with ``artefact_prob``."""
    names = [a for a, w in cfg.artefact_weights.items() if w > 0 and (ARTEFACTS[a] or not cine)]
    if not names or cfg.artefact_prob <= 0:
        return items
    weights = torch.tensor([cfg.artefact_weights[a] for a in names], dtype=torch.float)
    hit = (torch.rand(len(items), generator=generator) < cfg.artefact_prob) & present
    choice = torch.multinomial(weights, len(items), replacement=True, generator=generator)
    seeds = torch.randint(0, 2**62, (len(items),), generator=generator)
    indices = hit.nonzero().flatten().tolist()
    if not indices:
        return items
    transforms, out = _torchio_transforms(), items.clone()
    threads = torch.get_num_threads()
    # One thread: on 64 px images a second one costs more than it gives (2-10x slower on 2 busy cores).
    torch.set_num_threads(1)
    try:
        for i in indices:
            with torch.random.fork_rng(devices=[]):  # TorchIO draws from the global RNG; keep dropout's untouched
                torch.manual_seed(int(seeds[i]))
                image = transforms[names[int(choice[i])]](items[i].clamp(min=0)[..., None])  # [C, H, W, D=1]
            out[i] = torch.as_tensor(image)[..., 0]
    finally:
        torch.set_num_threads(threads)
    return out


def _series_present(batch: dict[str, torch.Tensor], view: str, per_study: int) -> torch.Tensor:
    """``[B * per_study]`` bool: which series of a view are real (missing views are zero-filled in a batch)."""
    present = batch["present"][:, MODEL_VIEWS.index(view)]
    mask = present[:, None].expand(-1, per_study)
    if view == "lge_lax":
        mask = mask & (torch.arange(per_study)[None, :] < batch["lge_lax_count"][:, None])
    return mask.reshape(-1)


def augment_batch(
    batch: dict[str, torch.Tensor], cfg: AugmentConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A new batch dict with every image view augmented (masks and counts are passed through)."""
    if not cfg.enabled:
        return batch
    out = dict(_sax_only(batch, cfg.sax_only_prob, generator) if "present" in batch else batch)
    for view, x in batch.items():
        if x.dtype != torch.float32:
            continue
        size = x.shape[-2:]
        # Group so that one item = one series: a cine (all frames share the transform) or one still image.
        cine = view in CINE_VIEWS
        items = x.reshape(-1, x.shape[-3], *size) if cine else x.reshape(-1, 1, *size)
        if cine and cfg.short_cine_prob > 0:
            items = _short_cines(items, cfg.short_cine_prob, generator)
        if cine and cfg.temporal_roll:
            items = _roll_frames(items, generator)
        items = _artefacts(items, _series_present(batch, view, len(items) // len(x)), cine, cfg, generator)
        items = _intensity(_geometry(items, cfg, generator), cfg, generator)
        out[view] = items.reshape(x.shape)
    return out
