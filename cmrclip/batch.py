"""Study batches: numpy clips (``cmrclip.clips``) -> padded tensors with a view mask -> view tokens.

A batch is a dict of tensors. Every model view is present as a zero-filled tensor, and ``present [B, V]``
(over ``MODEL_VIEWS``) says which ones the study really has; ``lge_lax_count [B]`` says how many of the
``LGE_LAX_MAX`` long-axis LGE slots are real. The encoders never see which views are missing except through
the masks, so a study with any subset of views (even none) encodes without error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE, LGE_LAX_MAX, MODEL_VIEWS, SAX_LEVELS

# View tokens, in order: every SAX level and long-axis cine is one cine token, every LGE image one still token.
CINE_TOKENS: tuple[str, ...] = ("sax_base", "sax_mid", "sax_apex", "2ch", "3ch", "4ch")
STILL_TOKENS: tuple[str, ...] = tuple(f"lge_sax_{i}" for i in range(SAX_LEVELS)) + tuple(
    f"lge_lax_{i}" for i in range(LGE_LAX_MAX)
)
TOKEN_NAMES: tuple[str, ...] = CINE_TOKENS + STILL_TOKENS
_FOUR_CHAMBER = CINE_TOKENS.index("4ch")


def _view_shape(view: str) -> tuple[int, ...]:
    frame = (CLIP_SIZE, CLIP_SIZE)
    return {
        "sax": (SAX_LEVELS, CLIP_FRAMES, *frame),
        "lge_sax": (SAX_LEVELS, *frame),
        "lge_lax": (LGE_LAX_MAX, *frame),
    }.get(view, (CLIP_FRAMES, *frame))


def collate_studies(studies: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack per-study clip dicts (as read by ``clips.load_clip``) into one batch dict of float32 tensors."""
    batch: dict[str, torch.Tensor] = {}
    present = torch.zeros(len(studies), len(MODEL_VIEWS), dtype=torch.bool)
    lax_count = torch.zeros(len(studies), dtype=torch.long)
    for v, view in enumerate(MODEL_VIEWS):
        shape = _view_shape(view)
        out = torch.zeros(len(studies), *shape)
        for b, study in enumerate(studies):
            array = study.get(view)
            if array is None:
                continue
            tensor = torch.from_numpy(np.asarray(array, dtype=np.float32))
            if view == "lge_lax":
                count = min(tensor.shape[0], LGE_LAX_MAX)
                tensor = tensor[:count]
                lax_count[b] = count
                if count == 0:
                    continue
            expected = (tensor.shape[0], *shape[1:]) if view == "lge_lax" else shape
            if tuple(tensor.shape) != expected:
                raise ValueError(f"clip view {view!r} has shape {tuple(tensor.shape)}, expected {shape}")
            out[b, : tensor.shape[0]] = tensor
            present[b, v] = True
        batch[view] = out
    batch["present"] = present
    batch["lge_lax_count"] = lax_count
    return batch


@dataclass
class ViewTokens:
    """The inputs of the per-view encoder: cine tokens ``[B, 6, T, H, W]`` and still tokens ``[B, 6, H, W]``."""

    cine: torch.Tensor
    cine_mask: torch.Tensor
    still: torch.Tensor
    still_mask: torch.Tensor


def view_tokens(batch: dict[str, torch.Tensor], variant: str, num_frames: int) -> ViewTokens:
    """Split a batch into view tokens and apply an input variant.

    ``static`` keeps the first frame of each cine (cines start at the R wave, i.e. end-diastole);
    ``single_view`` keeps only the 4CH cine. ``num_frames`` frames are sampled evenly from longer cines.
    """
    present = batch["present"]
    index = {view: i for i, view in enumerate(MODEL_VIEWS)}
    sax = batch["sax"]
    cine = torch.cat([sax, torch.stack([batch["2ch"], batch["3ch"], batch["4ch"]], dim=1)], dim=1)
    cine_mask = torch.cat(
        [present[:, index["sax"], None].expand(-1, SAX_LEVELS), present[:, [index["2ch"], index["3ch"], index["4ch"]]]],
        dim=1,
    )
    still = torch.cat([batch["lge_sax"], batch["lge_lax"]], dim=1)
    slots = torch.arange(LGE_LAX_MAX, device=present.device)
    still_mask = torch.cat(
        [
            present[:, index["lge_sax"], None].expand(-1, SAX_LEVELS),
            present[:, index["lge_lax"], None] & (slots[None, :] < batch["lge_lax_count"][:, None]),
        ],
        dim=1,
    )
    frames = cine.shape[2]
    if variant == "static":
        cine = cine[:, :, :1]
    elif frames > num_frames:
        picks = torch.linspace(0, frames - 1, num_frames, device=cine.device).round().long()
        cine = cine[:, :, picks]
    if variant == "single_view":
        keep = torch.zeros_like(cine_mask)
        keep[:, _FOUR_CHAMBER] = True
        cine_mask = cine_mask & keep
        still_mask = torch.zeros_like(still_mask)
    elif variant not in ("full", "static"):
        raise ValueError(f"unknown input variant {variant!r}")
    return ViewTokens(cine, cine_mask, still, still_mask)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[N, T, H, W]`` frames to ``size`` x ``size`` (no-op when already that size)."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    n, t = frames.shape[:2]
    out = F.interpolate(frames.reshape(n * t, 1, *frames.shape[-2:]), size=(size, size), mode="bilinear")
    return out.reshape(n, t, size, size)


def batch_to(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
