"""Ingest of files no one on the team wrote: the Sunnybrook cine stack and pydicom's own test files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_files
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import IngestError, Series, Study
from cmrclip.clips import CLIP_SIZE, CLIP_SPACING_MM, load_clip
from indexer.headers import read_headers
from indexer.heart import heart_center, pixel_to_patient
from indexer.ingest import ingest_folder
from indexer.pixels import load_series

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason="shared/realdata not present")


@pytest.fixture
def real_archive(tmp_path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(REALDATA, root / "realdata")
    return root


def _ingest(url: str, root: Path, tmp_path: Path):
    return ingest_folder(url, root, tmp_path / "clips", workers=1, progress=False)


def test_real_cine_stack_is_one_sax_study_in_cardiac_order(db_url, real_archive, tmp_path):
    _ingest(db_url, real_archive, tmp_path)
    with session_scope(db_url) as s:
        studies = s.scalars(select(Study)).all()
        assert len(studies) == 1
        study = studies[0]
        assert study.views == ["sax"]
        assert study.state == "preprocessed"
        (series,) = s.scalars(select(Series)).all()
        assert (series.n_slices, series.n_phases) == (12, 20)
        # frames are ordered by trigger time within each slice and slices move monotonically along the normal
        by_slice: dict[int, list[float]] = {}
        heights = {}
        normal = np.array(series.normal)
        for path, sl, _ph, frame in series.frames:
            h = read_headers(Path(path))[frame]
            by_slice.setdefault(sl, []).append(h.trigger_time)
            heights[sl] = float(h.position @ normal)
        for times in by_slice.values():
            assert times == sorted(times)
        assert [heights[i] for i in range(12)] == sorted(heights.values())
        clip = load_clip(Path(study.clip_path))
        px = load_series(series.frames, series.rows, series.columns, series.pixel_spacing_mm)
    assert clip["sax"].shape == (3, 16, 64, 64)
    # The crop holds the heart: the LV centre annotated by hand (row 135, col 125 of the 7th slice) lies in the
    # central half of the crop, whose centre is the detected heart centre.
    annotated = pixel_to_patient(px, 6, 135, 125)
    found = heart_center([px])
    offset = found - annotated
    in_plane = offset - (offset @ px.normal) * px.normal
    assert np.linalg.norm(in_plane) / CLIP_SPACING_MM < CLIP_SIZE / 4
    assert np.linalg.norm(offset) < 20.0


def test_pydicom_test_files_never_stop_the_batch(sqlite_url, real_archive, tmp_path):
    other = real_archive / "pydicom"
    other.mkdir()
    for i, f in enumerate(get_testdata_files()):
        if Path(f).is_file():
            shutil.copy(f, other / f"{i:03d}_{Path(f).name}")
    summary = _ingest(sqlite_url, real_archive, tmp_path)
    assert summary.scan.files > 100
    with session_scope(sqlite_url) as s:
        real = s.scalar(select(Study).where(Study.views.is_not(None), Study.manufacturer == "GE MEDICAL SYSTEMS",
                                            Study.study_uid.startswith("2.16.124.113543")))
        assert real is not None and real.state == "preprocessed"
        kinds = {e.kind for e in s.scalars(select(IngestError))}
    assert "not_dicom" in kinds and "not_mr_image" in kinds


def test_reingest_is_idempotent(db_url, real_archive, tmp_path):
    _ingest(db_url, real_archive, tmp_path)
    with session_scope(db_url) as s:
        before = [(st.id, st.study_uid, st.fingerprint, st.state, st.clip_path) for st in s.scalars(select(Study))]
        errors_before = sorted((e.path, e.kind) for e in s.scalars(select(IngestError)))
    summary = _ingest(db_url, real_archive, tmp_path)
    assert summary.scan.studies_unchanged == 1 and summary.preprocessed == 0
    with session_scope(db_url) as s:
        after = [(st.id, st.study_uid, st.fingerprint, st.state, st.clip_path) for st in s.scalars(select(Study))]
        errors_after = sorted((e.path, e.kind) for e in s.scalars(select(IngestError)))
    assert before == after and errors_before == errors_after
