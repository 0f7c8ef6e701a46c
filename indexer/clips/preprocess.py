"""Pixels → per-view clips: normalise, resample to a fixed spacing and frame count, crop around the heart.

The clip format is ``cmrclip.clips``; ``PREPROCESS_VERSION`` is part of the cache key and of every checkpoint,
so changing anything here that changes clips must change the version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE, CLIP_SPACING_MM, LGE_LAX_MAX
from indexer.clips.heart import heart_center, moving_extent, patient_to_pixel, stack_axis
from indexer.dicom.assemble import Problem
from indexer.dicom.pixels import SeriesPixels, load_series
from indexer.dicom.views import MIN_CINE_PHASES, oriented_axis

log = logging.getLogger(__name__)

PREPROCESS_VERSION = f"pp3-{CLIP_SIZE}px-{CLIP_SPACING_MM}mm-{CLIP_FRAMES}f"
SAX_FRACTIONS = (0.2, 0.5, 0.8)  # basal, mid, apical: fractions of the moving LV extent


@dataclass
class SeriesInput:
    """A catalog series, as plain data for a worker process."""

    view: str
    series_number: int
    rows: int
    columns: int
    pixel_spacing: float | None
    frames: list[list]


@dataclass
class ClipResult:
    views: dict[str, np.ndarray] = field(default_factory=dict)
    center: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)  # why each series that gave no clip was left out

    def failure_reason(self) -> str:
        """Why the study has no clip, naming each series and what it lacked."""
        if not self.unusable:
            return "no cine or LGE series in the study (every series is of another kind)"
        return "no usable view: " + "; ".join(self.unusable)


def _resample_time(cine: np.ndarray, frames: int = CLIP_FRAMES) -> np.ndarray:
    """Resample ``[T, ...]`` over one periodic cardiac cycle to ``frames`` frames (linear)."""
    t = cine.shape[0]
    if t == frames:
        return cine
    pos = np.arange(frames) * t / frames
    lo = np.floor(pos).astype(int) % t
    hi = (lo + 1) % t
    w = (pos - np.floor(pos))[:, None, None]
    return cine[lo] * (1 - w) + cine[hi] * w


def _crop(px: SeriesPixels, images: np.ndarray, slice_index: int, center: np.ndarray | None) -> np.ndarray:
    """Crop ``images [N, H, W]`` of one slice to CLIP_SIZE² at CLIP_SPACING_MM around the heart centre."""
    n, h, w = images.shape
    if center is not None:
        r, c = patient_to_pixel(px, slice_index, center)
    else:
        r, c = h / 2, w / 2
    half = CLIP_SIZE * CLIP_SPACING_MM / 2.0 / px.spacing  # half window in source pixels
    step = CLIP_SPACING_MM / px.spacing
    grid = (np.arange(CLIP_SIZE) + 0.5) * step - half
    rr, cc = np.meshgrid(r + grid, c + grid, indexing="ij")
    # Anti-alias when shrinking, then sample the window (zero outside the image).
    sigma = max((step - 1.0) / 2.0, 0.0)
    out = np.empty((n, CLIP_SIZE, CLIP_SIZE), dtype=np.float32)
    for i in range(n):
        img = ndimage.gaussian_filter(images[i], sigma) if sigma > 0 else images[i]
        out[i] = ndimage.map_coordinates(img, [rr, cc], order=1, mode="constant", cval=0.0)
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1.0, 99.5])
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _axis_heights(px: SeriesPixels, axis: np.ndarray) -> np.ndarray:
    return px.positions @ axis


def _sax_levels(px: SeriesPixels, axis: np.ndarray) -> list[int]:
    """Slices at basal / mid / apical fractions of the stack's moving extent, ordered base → apex."""
    heights = _axis_heights(px, axis)
    order = np.argsort(heights)  # base first: the axis points to the apex
    first, last = moving_extent(px, order) if px.data.shape[1] >= MIN_CINE_PHASES else (0, len(order) - 1)
    picks = [order[int(round(first + f * (last - first)))] for f in SAX_FRACTIONS]
    return picks


def _nearest_levels(px: SeriesPixels, axis: np.ndarray, targets: np.ndarray) -> list[int]:
    heights = _axis_heights(px, axis)
    return [int(np.argmin(np.abs(heights - t))) for t in targets]


def _join_split_stacks(parts: list[SeriesPixels]) -> list[SeriesPixels]:
    """Some scanners store a short-axis stack as one series per slice: join parallel series of one matrix."""
    groups: list[list[SeriesPixels]] = []
    for px in parts:
        for group in groups:
            ref = group[0]
            if abs(float(ref.normal @ px.normal)) > 0.99 and ref.data.shape[1:] == px.data.shape[1:]:
                group.append(px)
                break
        else:
            groups.append([px])
    return [g[0] if len(g) == 1 else SeriesPixels.stack(g) for g in groups]


def _is_cine(px: SeriesPixels) -> bool:
    return px.data.shape[1] >= MIN_CINE_PHASES


def _note_short_cines(loaded: dict[str, list[SeriesPixels]], result: ClipResult) -> None:
    """Say why a cine series cannot make a clip: one phase is a still image, not a cine."""
    for view in ("sax", "2ch", "3ch", "4ch"):
        for px in loaded.get(view, []):
            if not _is_cine(px):
                result.unusable.append(
                    f"{view} series has {px.data.shape[1]} phase(s); a cine needs at least {MIN_CINE_PHASES}"
                )


def make_clips(series: list[SeriesInput]) -> ClipResult:
    """Build the clip views of one study from its classified series."""
    result = ClipResult()
    loaded: dict[str, list[SeriesPixels]] = {}
    for s in sorted(series, key=lambda s: s.series_number):
        if s.view == "other":
            continue
        try:
            px = load_series(s.frames, s.rows, s.columns, s.pixel_spacing)
        except Exception as exc:
            result.problems.append(Problem("bad_series", f"{s.view} series unusable: {exc}", s.frames[0][0]))
            result.unusable.append(f"{s.view} series {s.series_number}: pixels unreadable ({exc})")
            continue
        result.problems.extend(px.problems)
        loaded.setdefault(s.view, []).append(px)

    for view in ("sax", "lge_sax"):
        if view in loaded:
            loaded[view] = _join_split_stacks(loaded[view])
    _note_short_cines(loaded, result)
    cines = [px for v in ("sax", "4ch", "2ch", "3ch") for px in loaded.get(v, []) if _is_cine(px)]
    sax_stack = max(loaded.get("sax", []), key=lambda p: p.data.shape[0] * p.data.shape[1], default=None)
    center = heart_center(([sax_stack] if sax_stack is not None else []) + cines)
    result.center = center
    axis = stack_axis(sax_stack, center) if sax_stack is not None else None

    sax_targets = None
    if sax_stack is not None and _is_cine(sax_stack):
        levels = _sax_levels(sax_stack, axis)
        sax_targets = _axis_heights(sax_stack, axis)[levels]
        cine = np.stack([_crop(sax_stack, _resample_time(sax_stack.data[s]), s, center) for s in levels])
        result.views["sax"] = _normalise(cine)
    for view in ("2ch", "3ch", "4ch"):
        px = next((p for p in loaded.get(view, []) if _is_cine(p)), None)
        if px is not None:
            result.views[view] = _normalise(_crop(px, _resample_time(px.data[0]), 0, center))
    lge_sax = max(loaded.get("lge_sax", []), key=lambda p: p.data.shape[0], default=None)
    if lge_sax is not None:
        lge_axis = axis if axis is not None else oriented_axis(lge_sax.normal)
        if sax_targets is not None:
            levels = _nearest_levels(lge_sax, lge_axis, sax_targets)
        else:
            order = np.argsort(_axis_heights(lge_sax, lge_axis))
            levels = [int(order[int(round(f * (len(order) - 1)))]) for f in SAX_FRACTIONS]
        imgs = np.stack([_crop(lge_sax, lge_sax.data[s, :1], s, center)[0] for s in levels])
        result.views["lge_sax"] = _normalise(imgs)
    lax_imgs = [
        _crop(px, px.data[s, :1], s, center)[0] for px in loaded.get("lge_lax", []) for s in range(px.data.shape[0])
    ][:LGE_LAX_MAX]
    if lax_imgs:
        result.views["lge_lax"] = _normalise(np.stack(lax_imgs))
    return result
