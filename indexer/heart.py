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
    blob = np.clip(-ndimage.gaussian_laplace(c.max(axis=0), sigma=14.0 / spacing), 0, None)
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


def heart_center(cines: list[SeriesPixels]) -> np.ndarray | None:
    """3D heart centre (patient mm) from cine series: for a stack, the motion peak over its middle slices,
    for single slices, the mean of their motion peaks."""
    points = []
    for px in cines:
        if px.data.shape[1] < 4:
            continue
        n = px.data.shape[0]
        middle = range(n // 4, n - n // 4) if n >= 4 else range(n)
        maps = np.stack([heart_score(px.data[s], px.spacing) for s in middle])
        energy = np.stack([motion_map(px.data[s], px.spacing) for s in middle]).sum(axis=(1, 2))
        combined = maps.mean(axis=0) * _center_prior(maps.shape[1:])
        r, c = np.unravel_index(int(np.argmax(combined)), combined.shape)
        # slice position: motion-weighted mean of the middle slices
        weights = energy / (energy.sum() + 1e-9)
        pts = np.stack([pixel_to_patient(px, s, r, c) for s in middle])
        points.append((weights[:, None] * pts).sum(axis=0))
        if n >= 4:  # a stack settles it
            return points[-1]
    return np.mean(points, axis=0) if points else None
