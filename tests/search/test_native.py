"""Native cines for the Study page: the catalog's files at their own resolution and frame rate, windowed, with the
model's crop projected into each image plane."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from catalog.db import session_scope
from catalog.models import Study
from catalog.studies import series_frames
from cmrclip.clips import CROP_MM, crop_path
from search.native import DEFAULT_FRAME_MS, crop_center, native_cine, native_cines
from tests.indexer import pacs_support


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    url = pacs_support.ingested_archive(tmp_path_factory.mktemp("native"), 2, seed=29)
    with session_scope(url) as session:
        study = session.query(Study).filter(Study.clip_path.isnot(None)).first()
        return url, study.id, study.clip_path


def test_native_cines_have_the_acquisitions_pixels_and_timing(ingested):
    url, study_id, clip_path = ingested
    with session_scope(url) as session:
        series = series_frames(session, study_id)
    center = crop_center(clip_path)
    assert crop_path(clip_path).is_file() and center is not None and center.shape == (3,)
    cines = native_cines(series, center)
    by_view = {s.view: s for s in series}
    assert {c.label.split(" · ")[0] for c in cines} >= {"SAX", "4CH"}
    for cine in cines:
        view = next(v for v, s in by_view.items() if cine.label.endswith(f"series {s.series_number}"))
        s = by_view[view]
        mid = sorted({f[1] for f in s.frames})[len({f[1] for f in s.frames}) // 2]
        files = sorted((f for f in s.frames if f[1] == mid), key=lambda f: f[2])
        headers = [pydicom.dcmread(f[0], stop_before_pixels=True) for f in files]
        assert cine.frames.dtype == np.uint8
        assert cine.frames.shape == (len(files), int(headers[0].Rows), int(headers[0].Columns))
        assert cine.frames.max() > 200 and cine.frames.min() < 30, "windowed to the display range"
        if len(files) > 1 and all("TriggerTime" in h for h in headers):
            assert cine.frame_ms == pytest.approx(np.median(np.diff([float(h.TriggerTime) for h in headers])))
        else:
            assert cine.frame_ms > 0
        # the crop: a CROP_MM square around the heart, inside the image for a cine of the heart
        r0, c0, r1, c1 = cine.crop
        row_mm = float(headers[0].PixelSpacing[0])
        assert r1 - r0 == pytest.approx(CROP_MM / row_mm)
        assert 0 <= (r0 + r1) / 2 <= cine.frames.shape[1] and 0 <= (c0 + c1) / 2 <= cine.frames.shape[2]
    gif = Image.open(io.BytesIO(cines[0].gif(show_crop=True)))
    assert gif.n_frames == len(cines[0].frames) and gif.size == cines[0].frames.shape[:0:-1]
    assert gif.info["duration"] == pytest.approx(cines[0].frame_ms, abs=10)


def test_missing_files_and_no_crop(ingested, tmp_path):
    url, study_id, _ = ingested
    with session_scope(url) as session:
        series = series_frames(session, study_id)[0]
    gone = type(series)(series.view, series.series_number, series.description, series.n_slices, series.n_phases,
                        [[str(tmp_path / "nope.dcm"), 0, 0, 0]])
    assert native_cine(gone) is None
    cine = native_cine(series)  # no crop centre: no box, still a cine
    assert cine is not None and cine.crop is None and cine.frame_ms > 0
    assert crop_center(None) is None and crop_center(str(tmp_path / "x.npz")) is None
    assert DEFAULT_FRAME_MS > 0
