"""Cine previews: the result-card GIF (cached on disk), and per-view GIFs and frames for the study page."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from cmrclip.clips import load_clip
from indexer.clip_preview import clip_gif

log = logging.getLogger(__name__)

SCALE = 3  # screen pixels per clip pixel
FRAME_MS = 60


def _clip_version(clip_path: Path) -> str:
    """The preprocessing version of a clip file (its folder under the clip cache, see ``cmrclip.clips``)."""
    return clip_path.parent.name or "v"


def card_preview(clip_path: str | None, study_uid: str, preview_dir: Path) -> bytes | None:
    """The 4CH + mid-SAX GIF of a study, made once and kept under ``preview_dir``; None without a usable clip.

    The file name holds the study UID and the clip version, so a re-preprocessed study gets a new preview.
    It lives on the server only (the browser gets bytes, never the name).
    """
    if not clip_path or not Path(clip_path).is_file():
        return None
    path = Path(clip_path)
    cached = Path(preview_dir) / f"{study_uid}_{_clip_version(path)}.gif"
    if cached.is_file():
        return cached.read_bytes()
    try:
        data = clip_gif(load_clip(path), scale=2)
    except (OSError, ValueError) as exc:
        log.warning("no preview for %s: %s", study_uid, exc)
        return None
    if not data:
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data


def load_views(clip_path: str | None) -> dict[str, np.ndarray] | None:
    """The clip arrays of a study, or None when the file is missing or unreadable."""
    if not clip_path or not Path(clip_path).is_file():
        return None
    try:
        return load_clip(Path(clip_path))
    except (OSError, ValueError) as exc:
        log.warning("cannot read clip %s: %s", clip_path, exc)
        return None


def view_sequences(views: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every image sequence of a clip as ``label -> [N, H, W]``: one per cine (SAX: per level), one per LGE view."""
    out: dict[str, np.ndarray] = {}
    for view in ("4ch", "2ch", "3ch", "sax", "lge_sax", "lge_lax"):
        if view not in views:
            continue
        arr = np.asarray(views[view], dtype=np.float32)
        if view == "sax" and arr.ndim == 4:
            for level, name in zip(arr, ("base", "mid", "apex"), strict=False):
                out[f"SAX {name}"] = level
        elif arr.ndim == 3:
            out[view.replace("_", " ").upper()] = arr
    return out


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _image(frame: np.ndarray, scale: int) -> Image.Image:
    img = Image.fromarray(_u8(frame))
    return img.resize((img.width * scale, img.height * scale), Image.BILINEAR)


def sequence_gif(seq: np.ndarray, scale: int = SCALE, duration_ms: int = FRAME_MS) -> bytes:
    """An endlessly looping GIF of ``[N, H, W]`` frames."""
    frames = [_image(f, scale) for f in seq]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def frame_png(seq: np.ndarray, index: int, scale: int = SCALE) -> bytes:
    """One frame of ``[N, H, W]`` as PNG."""
    buf = io.BytesIO()
    _image(seq[int(np.clip(index, 0, len(seq) - 1))], scale).save(buf, format="PNG")
    return buf.getvalue()
