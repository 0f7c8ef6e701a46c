"""Ingest of files no one on the team wrote: the four Sunnybrook cine stacks and pydicom's own test files."""

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
from indexer.clips.heart import heart_center, pixel_to_patient
from indexer.dicom.assemble import assemble_series
from indexer.dicom.headers import read_headers
from indexer.dicom.pixels import load_series
from indexer.pipeline import ingest_folder

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason="shared/realdata not present")


@pytest.fixture
def real_archive(tmp_path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(REALDATA, root / "realdata")
    return root


def _ingest(url: str, root: Path, tmp_path: Path):
    return ingest_folder(url, root, tmp_path / "clips", workers=1, progress=False)


# Each stack as the archive holds it: (slices, phases) and the LV blood-pool centre annotated by hand on the
# middle slice (index n // 2 of the stack ordered along its normal) at the first phase, as (row, column).
STACKS = {
    "SCD0000101": ((12, 20), (135, 125)),
    "SCD0000201": ((13, 20), (116, 132)),
    "SCD0000401": ((11, 20), (118, 122)),
    "SCD0000501": ((11, 20), (113, 133)),
}


def _stack_of(series: Series) -> str:
    return next(part for part in Path(series.frames[0][0]).parts if part in STACKS)


def test_each_real_cine_stack_is_one_sax_study_in_cardiac_order(db_url, real_archive, tmp_path):
    _ingest(db_url, real_archive, tmp_path)
    with session_scope(db_url) as s:
        studies = s.scalars(select(Study)).all()
        assert len(studies) == len(STACKS)
        for study in studies:
            assert study.views == ["sax"]
            assert study.state == "preprocessed"
            assert load_clip(Path(study.clip_path))["sax"].shape == (3, 16, 64, 64)
        series_by_stack = {_stack_of(se): se for se in s.scalars(select(Series))}
        assert set(series_by_stack) == set(STACKS)
        for name, ((n_slices, n_phases), _) in STACKS.items():
            series = series_by_stack[name]
            assert (series.n_slices, series.n_phases) == (n_slices, n_phases), name
            # frames are ordered by trigger time within each slice and slices move monotonically along the normal
            by_slice: dict[int, list[float]] = {}
            heights = {}
            normal = np.array(series.normal)
            for path, sl, _ph, frame in series.frames:
                h = read_headers(Path(path))[frame]
                by_slice.setdefault(sl, []).append(h.trigger_time)
                heights[sl] = float(h.position @ normal)
            for times in by_slice.values():
                assert times == sorted(times), name
            assert [heights[i] for i in range(n_slices)] == sorted(heights.values()), name


@pytest.mark.parametrize("name", sorted(STACKS))
def test_crop_is_centred_on_the_left_ventricle(name):
    """Heart failure leaves a dilated LV that hardly moves: the crop must still hold it near its centre."""
    (stack_dir,) = (REALDATA / "sunnybrook" / name).iterdir()
    files = sorted(stack_dir.glob("*.dcm"))
    assembled = assemble_series([h for f in files for h in read_headers(f)])
    frames = [[f.path, i, j, f.frame] for i, row in enumerate(assembled.grid) for j, f in enumerate(row)]
    first = assembled.frames[0]
    px = load_series(frames, first.rows, first.columns, first.pixel_spacing)
    _, (row, col) = STACKS[name]
    annotated = pixel_to_patient(px, px.data.shape[0] // 2, row, col)
    found = heart_center([px])
    offset = found - annotated
    in_plane = offset - (offset @ px.normal) * px.normal
    # within an eighth of the crop's width in plane (a quarter of the way to its edge), and one slice or so along it
    assert np.linalg.norm(in_plane) / CLIP_SPACING_MM < CLIP_SIZE / 8, f"{name}: {np.linalg.norm(in_plane):.1f} mm"
    assert np.linalg.norm(offset) < 20.0, name


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
    assert summary.scan.studies_unchanged == len(STACKS) and summary.preprocessed == 0
    with session_scope(db_url) as s:
        after = [(st.id, st.study_uid, st.fingerprint, st.state, st.clip_path) for st in s.scalars(select(Study))]
        errors_after = sorted((e.path, e.kind) for e in s.scalars(select(IngestError)))
    assert before == after and errors_before == errors_after
