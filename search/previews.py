"""Pictures of a study's clips: the result-card GIF (cached on disk), per-view GIFs and frames for the study page,
and the strip and animation ``cmr clip`` writes. The UI and the CLI show clips only through this module."""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cmrclip.clips import MODEL_VIEWS, load_clip

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
    # one temporary name per thread: the UI's sessions are threads of one process, and several of them make the
    # same new preview at once (a shared name had one thread's rename find the file gone)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
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

SCALE = 2  # each clip pixel becomes SCALE x SCALE screen pixels


def _rows(views: dict[str, np.ndarray], frames: int) -> list[tuple[str, np.ndarray]]:
    """One row per image sequence: label, ``[frames, H, W]``."""
    rows = []
    for view in MODEL_VIEWS:
        if view not in views:
            continue
        arr = np.asarray(views[view], dtype=np.float32)
        if view == "sax":
            for level, name in zip(arr, ("sax base", "sax mid", "sax apex"), strict=False):
                rows.append((name, level))
        elif view in ("lge_sax", "lge_lax"):
            rows.append((view, arr))
        else:
            rows.append((view, arr))
    out = []
    for name, seq in rows:
        idx = np.linspace(0, seq.shape[0] - 1, min(frames, seq.shape[0])).round().astype(int)
        out.append((name, seq[idx]))
    return out


def _to_u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def clip_strip(views: dict[str, np.ndarray], frames: int = 8) -> Image.Image:
    """A grid image: one row per view (SAX: one per level), ``frames`` columns through the cycle."""
    rows = _rows(views, frames)
    if not rows:
        raise ValueError("the clip has no views")
    h, w = rows[0][1].shape[1:]
    label_w = 70
    canvas = Image.new("L", (label_w + frames * w * SCALE, len(rows) * h * SCALE), 0)
    draw = ImageDraw.Draw(canvas)
    for r, (name, seq) in enumerate(rows):
        draw.text((4, r * h * SCALE + 4), name, fill=255)
        for c, img in enumerate(seq):
            tile = Image.fromarray(_to_u8(img)).resize((w * SCALE, h * SCALE), Image.NEAREST)
            canvas.paste(tile, (label_w + c * w * SCALE, r * h * SCALE))
    return canvas


def clip_gif(views: dict[str, np.ndarray], order: tuple[str, ...] = ("4ch", "sax"), scale: int = 3,
             duration_ms: int = 60) -> bytes:
    """An animated GIF of the cines side by side (4CH and mid-SAX by default); empty bytes if none."""
    panels = []
    for view in order:
        if view not in views:
            continue
        seq = np.asarray(views[view], dtype=np.float32)
        panels.append(seq[seq.shape[0] // 2] if view == "sax" else seq)
    panels = [p for p in panels if p.ndim == 3]
    if not panels:
        return b""
    t = min(p.shape[0] for p in panels)
    frames = []
    for i in range(t):
        row = np.concatenate([_to_u8(p[i]) for p in panels], axis=1)
        img = Image.fromarray(row)
        frames.append(img.resize((img.width * scale, img.height * scale), Image.BILINEAR))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buf.getvalue()
