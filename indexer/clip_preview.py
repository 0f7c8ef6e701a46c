"""Pictures of clips, so a person can check the crop: a PNG strip and an animated GIF."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from cmrclip.clips import MODEL_VIEWS

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
