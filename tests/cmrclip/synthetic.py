"""A tiny synthetic "archive" for tests: rings that beat, with captions that say how.

Each cine shows a ring (the LV wall) whose radius is set by ``dilated`` and whose contraction amplitude by
``reduced_function``; LGE images carry a bright spot when ``lge``. Captions name these attributes in words, so a
model that learns must read motion (function), size (dilation) and LGE contrast from the clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE, save_clip
from cmrclip.train.records import StudyRecord

ATTRIBUTES = ("dilated", "reduced_function", "lge")


@dataclass
class SyntheticStudy:
    views: dict[str, np.ndarray]
    caption: str
    labels: dict[str, bool]


def _ring(radius: float, thickness: float, center: tuple[float, float], size: int = CLIP_SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - center[0], xx - center[1])
    return np.clip(1.0 - np.abs(dist - radius) / thickness, 0, 1)


def make_study(
    rng: np.random.Generator, labels: dict[str, bool], views: tuple[str, ...] = ("sax", "2ch", "3ch", "4ch",
                                                                                "lge_sax", "lge_lax")
) -> SyntheticStudy:
    radius = 17.0 if labels["dilated"] else 10.0
    amplitude = 0.05 if labels["reduced_function"] else 0.35
    phase = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(CLIP_FRAMES) / CLIP_FRAMES)  # 0 at end-diastole

    def cine() -> np.ndarray:
        center = (32 + rng.normal(0, 2), 32 + rng.normal(0, 2))
        r = radius * rng.uniform(0.9, 1.1)
        frames = [_ring(r * (1 - amplitude * p), 3.0 + 2 * amplitude * p, center) for p in phase]
        return (np.stack(frames) * rng.uniform(0.7, 1.0) + rng.normal(0, 0.03, (CLIP_FRAMES, 64, 64))).astype(
            np.float16
        )

    def still() -> np.ndarray:
        img = 0.3 * _ring(radius, 3.0, (32, 32))
        if labels["lge"]:
            img[30:36, 32 + int(radius) - 3 : 32 + int(radius) + 3] = 1.0
        return (img + rng.normal(0, 0.03, img.shape)).astype(np.float16)

    out: dict[str, np.ndarray] = {}
    for view in views:
        if view == "sax":
            out[view] = np.stack([cine() for _ in range(3)])
        elif view in ("2ch", "3ch", "4ch"):
            out[view] = cine()
        elif view == "lge_sax":
            out[view] = np.stack([still() for _ in range(3)])
        elif view == "lge_lax":
            out[view] = np.stack([still() for _ in range(int(rng.integers(1, 4)))])
    words = [
        "dilated left ventricle" if labels["dilated"] else "normal left ventricular size",
        "severely reduced systolic function" if labels["reduced_function"] else "normal systolic function",
        "late gadolinium enhancement present" if labels["lge"] else "no late gadolinium enhancement",
    ]
    order = rng.permutation(3)
    return SyntheticStudy(out, ", ".join(words[i] for i in order) + ".", labels)


def make_archive(
    root: Path, n: int, seed: int = 0, sites: tuple[str, ...] = ("site_a", "site_b")
) -> tuple[list[StudyRecord], dict[str, dict[str, bool]]]:
    """Write ``n`` synthetic studies under ``root``; returns records and per-UID labels."""
    rng = np.random.default_rng(seed)
    records, labels_by_uid = [], {}
    for i in range(n):
        labels = {name: bool(rng.random() < 0.5) for name in ATTRIBUTES}
        study = make_study(rng, labels)
        uid = f"1.2.3.{i}"
        path = Path(root) / f"{uid}.npz"
        save_clip(path, study.views)
        records.append(StudyRecord(i + 1, uid, path, study.caption, f"patient-{i // 2}", sites[i % len(sites)]))
        labels_by_uid[uid] = labels
    return records, labels_by_uid
