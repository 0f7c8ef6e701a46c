"""Find the heart: a bright, round blood pool (the LV at end-diastole) where the image changes most over the
cardiac cycle. Motion alone peaks on whatever boundary moves most (often the inferior wall or the diaphragm
in a poorly contracting heart); a blob of LV size alone finds bright fat or bowel. Their product finds the LV."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from indexer.pixels import SeriesPixels


def motion_map(cine: np.ndarray, spacing: float) -> np.ndarray:
    """Temporal standard deviation of a cine ``[T, H, W]``, smoothed over ~8 mm, normalised by brightness."""
    std = cine.std(axis=0)
    scale = np.percentile(cine, 99) + 1e-6
    return ndimage.gaussian_filter(std / scale, sigma=max(8.0 / spacing, 1.0))


def heart_score(cine: np.ndarray, spacing: float) -> np.ndarray:
    """Per-pixel likelihood of the LV centre in one cine slice ``[T, H, W]``."""
    c = cine / (np.percentile(cine, 99) + 1e-6)
    motion = ndimage.gaussian_filter(c.std(axis=0), sigma=25.0 / spacing)
    peak = c.max(axis=0)
    # scale-normalised Laplacian of Gaussian over LV sizes from small to dilated (~30 to ~80 mm across)
    blob = np.max(
        [(sig / spacing) ** 2 * -ndimage.gaussian_laplace(peak, sigma=sig / spacing) for sig in (10.0, 15.0, 22.0)],
        axis=0,
    ).clip(0, None)
    return blob * motion / (motion.max() + 1e-9)


def _center_prior(shape: tuple[int, int]) -> np.ndarray:
    """A weak preference for the image centre, where radiographers put the heart."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-(((y - h / 2) / (0.45 * h)) ** 2 + ((x - w / 2) / (0.45 * w)) ** 2))


def pixel_to_patient(px: SeriesPixels, slice_index: int, row: float, col: float) -> np.ndarray:
    return (
        px.positions[slice_index]
        + col * px.spacing * px.row_dirs[slice_index]
        + row * px.spacing * px.col_dirs[slice_index]
    )


def patient_to_pixel(px: SeriesPixels, slice_index: int, point: np.ndarray) -> tuple[float, float]:
    d = point - px.positions[slice_index]
    return float(d @ px.col_dirs[slice_index]) / px.spacing, float(d @ px.row_dirs[slice_index]) / px.spacing


def _stack_center(px: SeriesPixels) -> np.ndarray:
    """LV centre of a short-axis stack.

    Apical slices hold the LV alone (the RV ends before the apex), so the LV is found there and followed up the
    long axis (the stack normal) to the middle of the moving extent of the stack.
    """
    from indexer.views import oriented_axis

    axis = oriented_axis(px.normal)
    heights = px.positions @ axis
    order = np.argsort(heights)  # base → apex
    energy = np.array([motion_map(px.data[s], px.spacing).max() for s in order])
    moving = np.flatnonzero(energy >= 0.35 * energy.max())
    first, last = (int(moving[0]), int(moving[-1])) if moving.size else (0, len(order) - 1)
    mid = (first + last) // 2
    apical = [int(order[i]) for i in range(mid, max(last, mid + 1))] or [int(order[mid])]
    score = np.mean([heart_score(px.data[s], px.spacing) for s in apical], axis=0)
    score = score * _center_prior(score.shape)
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    point = np.mean([pixel_to_patient(px, s, r, c) for s in apical], axis=0)
    return point + (heights[order[mid]] - float(point @ axis)) * axis


def heart_center(cines: list[SeriesPixels]) -> np.ndarray | None:
    """3D LV centre (patient mm) from cine series: from the short-axis stack when there is one, else the
    mean of the long-axis cines' heart peaks."""
    points = []
    for px in cines:
        if px.data.shape[1] < 4:
            continue
        if px.data.shape[0] >= 4:
            return _stack_center(px)
        maps = np.stack([heart_score(px.data[s], px.spacing) for s in range(px.data.shape[0])])
        combined = maps.mean(axis=0) * _center_prior(maps.shape[1:])
        r, c = np.unravel_index(int(np.argmax(combined)), combined.shape)
        points.append(np.mean([pixel_to_patient(px, s, r, c) for s in range(px.data.shape[0])], axis=0))
    return np.mean(points, axis=0) if points else None
