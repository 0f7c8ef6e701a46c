"""The cines at native resolution for the Study page: the files the catalog references, as a viewer shows them.

The 64-pixel clips are what the model sees; a cardiologist checking a case wants the acquisition: every pixel, the
acquisition's frame rate, windowed as a viewer would. Per series, one cine: the mid slice of a short-axis stack,
the single slice of a long-axis view, phases in order. Windowing is the file's own VOI (Window Center / Width after
the modality LUT, by pydicom), else the 1st–99.5th percentile of the sequence. The frame interval is the median
step of Trigger Time between phases, else Frame Time, else the R-R interval (Heart Rate) over the phases, else
``DEFAULT_FRAME_MS``. The model's crop (``cmrclip.clips.load_crop``: the heart centre in patient coordinates) is
projected into each image plane and can be drawn as a square.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from catalog.studies import SeriesFrames
from cmrclip.clips import CROP_MM, load_crop

log = logging.getLogger(__name__)

DEFAULT_FRAME_MS = 40.0
MAX_FRAMES = 120  # a cine longer than this (real-time imaging) is shown with every n-th frame
CROP_COLOUR = (255, 200, 0)
LABELS = {"sax": "SAX", "2ch": "2CH", "3ch": "3CH", "4ch": "4CH", "lge_sax": "LGE SAX", "lge_lax": "LGE LAX"}


@dataclass(frozen=True)
class NativeCine:
    label: str
    frames: np.ndarray  # uint8 [T, H, W], windowed
    frame_ms: float
    spacing_mm: tuple[float, float] | None  # row, column spacing
    crop: tuple[float, float, float, float] | None  # (row0, col0, row1, col1) of the model's crop, in pixels

    def gif(self, *, show_crop: bool = False) -> bytes:
        """An endlessly looping GIF at the acquisition's frame rate (the crop drawn when asked and known)."""
        images = []
        for frame in self.frames:
            image = Image.fromarray(frame).convert("RGB")
            if show_crop and self.crop is not None:
                r0, c0, r1, c1 = self.crop
                ImageDraw.Draw(image).rectangle([c0, r0, c1, r1], outline=CROP_COLOUR, width=2)
            images.append(image)
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(int(round(self.frame_ms)), 20), loop=0)
        return buf.getvalue()


def _read(path: str, frame_number: int) -> tuple[np.ndarray, pydicom.Dataset]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[frame_number]
    return arr, ds


def _window(images: list[np.ndarray], first: pydicom.Dataset) -> np.ndarray:
    stack = np.stack([apply_modality_lut(img, first) for img in images]).astype(np.float64)
    if "WindowCenter" in first and "WindowWidth" in first:
        shown = apply_voi_lut(stack, first, prefer_lut=False)
        lo, hi = float(np.min(shown)), float(np.max(shown))
    else:
        shown = stack
        lo, hi = (float(v) for v in np.percentile(stack, [1.0, 99.5]))
    return np.clip((shown - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)


def _frame_ms(headers: Sequence[pydicom.Dataset]) -> float:
    times = [float(h.TriggerTime) for h in headers if "TriggerTime" in h and h.TriggerTime not in (None, "")]
    steps = np.diff(times) if len(times) == len(headers) else np.array([])
    if len(steps) and np.median(steps) > 0:
        return float(np.median(steps))
    first = headers[0]
    if "FrameTime" in first and first.FrameTime:
        return float(first.FrameTime)
    if "HeartRate" in first and first.HeartRate and len(headers) > 1:
        return 60_000.0 / float(first.HeartRate) / len(headers)
    return DEFAULT_FRAME_MS


def _crop_box(ds: pydicom.Dataset, center: np.ndarray | None) -> tuple[float, float, float, float] | None:
    try:
        origin = np.array(ds.ImagePositionPatient, dtype=np.float64)
        cosines = np.array(ds.ImageOrientationPatient, dtype=np.float64)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    if center is None:
        return None
    d = center - origin
    col = float(d @ cosines[:3]) / col_mm  # the first cosine runs along a row: column index grows
    row = float(d @ cosines[3:]) / row_mm
    half_r, half_c = CROP_MM / 2 / row_mm, CROP_MM / 2 / col_mm
    return row - half_r, col - half_c, row + half_r, col + half_c


def native_cine(series: SeriesFrames, crop_center: np.ndarray | None = None) -> NativeCine | None:
    """The series' cine (mid slice of a stack) at native resolution; None when its files cannot be read."""
    by_slice: dict[int, list[list]] = defaultdict(list)
    for path, slice_index, phase, frame_number in series.frames:
        by_slice[int(slice_index)].append([path, int(phase), int(frame_number)])
    if not by_slice:
        return None
    slices = sorted(by_slice)
    chosen = sorted(by_slice[slices[len(slices) // 2]], key=lambda f: f[1])
    step = max(1, -(-len(chosen) // MAX_FRAMES))
    chosen = chosen[::step]
    try:
        read = [_read(path, frame_number) for path, _, frame_number in chosen if Path(path).is_file()]
    except Exception as exc:  # a file changed or unreadable since the scan: the clips still show
        log.warning("native images of a %s series unreadable (%s)", series.view, type(exc).__name__)
        return None
    if not read:
        return None
    images, headers = [a for a, _ in read], [h for _, h in read]
    if len({img.shape for img in images}) != 1:
        return None
    first = headers[0]
    spacing = tuple(float(v) for v in first.PixelSpacing) if "PixelSpacing" in first else None
    label = LABELS.get(series.view, series.view.upper())
    return NativeCine(label=f"{label} · series {series.series_number}", frames=_window(images, first),
                      frame_ms=_frame_ms(headers) * step, spacing_mm=spacing,
                      crop=_crop_box(first, crop_center))


def crop_center(clip_path: str | None) -> np.ndarray | None:
    """The heart centre the study's clips were cropped around (None when not recorded)."""
    return load_crop(Path(clip_path)) if clip_path else None


def native_cines(series: Sequence[SeriesFrames], crop_center: np.ndarray | None = None) -> list[NativeCine]:
    """One native cine per model view series (``other`` left out), in the catalog's series order."""
    out = []
    for s in series:
        if s.view in LABELS:
            cine = native_cine(s, crop_center)
            if cine is not None:
                out.append(cine)
    return out
