"""Decode the pixels of a series into an ordered array, frame by frame, tolerating bad frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from indexer.dicom.assemble import Problem
from indexer.dicom.files import reader_warnings


@dataclass
class SeriesPixels:
    """Pixels [S, T, H, W] (float32) with the geometry of each slice."""

    data: np.ndarray
    positions: np.ndarray  # [S, 3] top-left pixel centre of each slice, mm
    row_dirs: np.ndarray  # [S, 3] direction of increasing column index
    col_dirs: np.ndarray  # [S, 3] direction of increasing row index
    spacing: float  # mm per pixel
    problems: list[Problem]

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.row_dirs[0], self.col_dirs[0])
        return n / np.linalg.norm(n)

    def subset(self, slices: list[int]) -> SeriesPixels:
        return SeriesPixels(self.data[slices], self.positions[slices], self.row_dirs[slices], self.col_dirs[slices],
                            self.spacing, [])

    @staticmethod
    def stack(parts: list[SeriesPixels]) -> SeriesPixels:
        """Join single-slice series of one plane family (a SAX stack stored one series per slice)."""
        return SeriesPixels(
            np.concatenate([p.data for p in parts]),
            np.concatenate([p.positions for p in parts]),
            np.concatenate([p.row_dirs for p in parts]),
            np.concatenate([p.col_dirs for p in parts]),
            parts[0].spacing,
            [q for p in parts for q in p.problems],
        )


def _frame(path: str, frame: int, cache: dict) -> np.ndarray:
    with reader_warnings(path):
        if path not in cache:
            cache.clear()
            cache[path] = pydicom.dcmread(path, force=True)
        ds = cache[path]
        arr = ds.pixel_array
    if arr.ndim == 3 and int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[frame]
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return arr.astype(np.float32) * slope + intercept


def _geometry(path: str, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Position and orientation of one frame: top-level tags first, then the frame's functional groups."""
    from indexer.dicom.headers import read_headers

    header = read_headers(Path(path))[frame]
    pos = header.position if header.position is not None else np.zeros(3)
    ori = header.orientation if header.orientation is not None else np.array([1.0, 0, 0, 0, 1.0, 0])
    return pos, ori


def load_series(frames: list[list], rows: int, cols: int, spacing: float | None) -> SeriesPixels:
    """Read a series from its ordered frame list ``[[path, slice, phase, frame], ...]``.

    A frame that cannot be decoded (truncated file, bad compression) is recorded and replaced by its
    neighbouring phase, so one bad file never loses the study.
    """
    n_slices = max(f[1] for f in frames) + 1
    n_phases = max(f[2] for f in frames) + 1
    data = np.zeros((n_slices, n_phases, rows, cols), dtype=np.float32)
    filled = np.zeros((n_slices, n_phases), dtype=bool)
    problems: list[Problem] = []
    cache: dict = {}
    first_of_slice: dict[int, tuple[str, int]] = {}
    for path, s, t, frame in frames:
        try:
            img = _frame(path, frame, cache)
            if img.shape != (rows, cols):
                raise ValueError(f"matrix {img.shape[0]}x{img.shape[1]} differs from {rows}x{cols}")
            data[s, t] = img
            filled[s, t] = True
            first_of_slice.setdefault(s, (path, frame))
        except Exception as exc:  # decoding errors come in many types; the reason is what matters
            problems.append(Problem("bad_pixel_data", f"cannot decode pixels: {type(exc).__name__}: {exc}", path))
    for s in range(n_slices):
        good = np.flatnonzero(filled[s])
        if good.size == 0:
            continue
        for t in np.flatnonzero(~filled[s]):
            data[s, t] = data[s, good[np.argmin(np.abs(good - t))]]
    keep = [s for s in range(n_slices) if filled[s].any()]
    if not keep:
        raise ValueError("no frame of the series could be decoded")
    geo = [_geometry(*first_of_slice[s]) for s in keep]
    oris = np.stack([g[1] for g in geo])
    return SeriesPixels(
        data=data[keep],
        positions=np.stack([g[0] for g in geo]),
        row_dirs=oris[:, :3] / np.linalg.norm(oris[:, :3], axis=1, keepdims=True),
        col_dirs=oris[:, 3:] / np.linalg.norm(oris[:, 3:], axis=1, keepdims=True),
        spacing=float(spacing or 1.0),
        problems=problems,
    )
