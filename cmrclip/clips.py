"""The clip contract between ``indexer.clips.preprocess`` (writer) and the model (reader).

One compressed ``.npz`` file per study, keyed by study UID and preprocessing version. Each view present in the
study is one array, float16, intensity-normalised to roughly [0, 1], resampled to a fixed pixel spacing and size
(``H == W == CLIP_SIZE``) and cropped around the heart:

- ``sax``      ``[3, T, H, W]``  basal, mid, apical short-axis cine slices
- ``2ch``, ``3ch``, ``4ch``  ``[T, H, W]``  long-axis cines
- ``lge_sax``  ``[3, H, W]``     basal, mid, apical late-enhancement images
- ``lge_lax``  ``[L, H, W]``     1..3 late-enhancement long-axis images

A missing view is simply absent from the file. ``T == CLIP_FRAMES`` for every cine.

Beside it, ``<clip>.crop.json`` holds the heart centre the crop was taken around (patient coordinates, mm) and the
crop's side (``CROP_MM``), so the Study page can draw the model's crop on the native images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

VIEWS: tuple[str, ...] = ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax", "other")
MODEL_VIEWS: tuple[str, ...] = ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax")
CINE_VIEWS: tuple[str, ...] = ("sax", "2ch", "3ch", "4ch")
CLIP_FRAMES = 16
CLIP_SIZE = 64
CLIP_SPACING_MM = 2.5
SAX_LEVELS = 3
LGE_LAX_MAX = 3
CROP_MM = CLIP_SIZE * CLIP_SPACING_MM  # side of the square every clip is cropped to, in mm


def clip_path(cache_dir: Path, study_uid: str, version: str) -> Path:
    """Where the clip file of one study lives for one preprocessing version."""
    return Path(cache_dir) / version / f"{study_uid}.npz"


def save_clip(path: Path, views: dict[str, np.ndarray]) -> None:
    """Write a study's clips atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unknown = set(views) - set(MODEL_VIEWS)
    if unknown:
        raise ValueError(f"unknown clip views: {sorted(unknown)}")
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float16) for k, v in views.items()})
    tmp.replace(path)


def load_clip(path: Path) -> dict[str, np.ndarray]:
    """Read a study's clips; raises FileNotFoundError when the cache has no file for it."""
    with np.load(Path(path)) as data:
        return {k: data[k] for k in data.files}


def crop_path(clip: Path) -> Path:
    return Path(clip).with_suffix(".crop.json")


def save_crop(clip: Path, center: np.ndarray) -> None:
    """Record the heart centre a study's clips were cropped around (atomically, beside the clip file)."""
    path = crop_path(clip)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"center_mm": [float(v) for v in center], "size_mm": CROP_MM}))
    os.replace(tmp, path)


def load_crop(clip: Path | None) -> np.ndarray | None:
    """The heart centre of a study's crop (patient coordinates, mm), or None when not recorded."""
    if clip is None or not crop_path(clip).is_file():
        return None
    try:
        return np.array(json.loads(crop_path(clip).read_text())["center_mm"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError):
        return None
