"""DICOMweb ingest against a real Orthanc: parity with a folder ingest, incremental runs, faults, auth, filters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import IngestError, IngestWatermark, Report, Study
from indexer.pipeline import Ingest, ingest_folder
from indexer.sources.dicomweb import make_session
from indexer.sources.dicomweb_config import PacsConfig
from migrations.apply import upgrade
from tests.indexer import pacs_support
from tests.indexer.pacs_support import OrthancServer, archive_files, make_settings, phantom_archive

pytestmark = [
    pytest.mark.skipif(not pacs_support.available(), reason="orthanc / orthanc-dicomweb not installed"),
    pytest.mark.timeout(600),
]
N_STUDIES = 5


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return phantom_archive(tmp_path_factory.getbasetemp(), N_STUDIES, seed=3)


@pytest.fixture(scope="module")
def orthanc(archive, tmp_path_factory):
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"))
    server.start()
    try:
        files = archive_files(archive / "dicom")
        assert server.upload(files) == len(files)
        yield server
    finally:
        server.stop()


def ingest_dicomweb(db_url: str, server_url: str, *, settings, **run):
    return Ingest.dicomweb(settings, server_url, deidentify=settings.deidentify, db_url=db_url).run(**run)


def _catalog(path: Path) -> str:
    url = f"sqlite:///{path / 'catalog.sqlite'}"
    upgrade(url)
    return url


def _content(url: str) -> dict[str, tuple]:
    """What a study looks like in the catalog, independent of where its files live."""
    with session_scope(url) as s:
        out = {}
        for st in s.scalars(select(Study)):
            series = tuple(
                (x.series_uid, x.view, x.n_slices, x.n_phases, len(x.frames))
                for x in sorted(st.series, key=lambda x: x.series_uid)
            )
            report = st.report.impression if st.report else None
            out[st.study_uid] = (
                tuple(st.views), series, st.accession, st.patient_id, st.patient_age, st.study_date, st.state, report
            )
        return out


@pytest.fixture(scope="module")
def pacs_run(orthanc, archive, tmp_path_factory):
    """One DICOMweb ingest of the whole archive (with its reports) into a fresh catalog."""
    d = tmp_path_factory.mktemp("pacs-run")
    url, settings = _catalog(d), make_settings(d / "data")
    summary = ingest_dicomweb(
        url, orthanc.dicomweb_url, settings=settings, reports=archive / "reports.csv", progress=False
    )
    return url, settings, summary


def test_dicomweb_ingest_matches_folder_ingest(pacs_run, archive, tmp_path):
    url, _settings, summary = pacs_run
    assert (summary.listed, summary.staged, summary.failed) == (N_STUDIES, N_STUDIES, 0)
    assert summary.instances == len(archive_files(archive / "dicom"))
    folder_url = _catalog(tmp_path)
    ingest_folder(folder_url, archive / "dicom", tmp_path / "clips", reports=archive / "reports.csv", progress=False)
    pacs, folder = _content(url), _content(folder_url)
    assert len(pacs) == N_STUDIES and pacs == folder
    with session_scope(url) as s:
        assert {st.source for st in s.scalars(select(Study))} == {"dicomweb"}
        assert s.scalar(select(func.count()).select_from(Report).where(Report.study_id.is_not(None))) > 0


def test_incremental_rerun_fetches_nothing(pacs_run, orthanc, archive):
    url, settings, _ = pacs_run
    with session_scope(url) as s:
        mark = s.get(IngestWatermark, next(iter(s.scalars(select(IngestWatermark.source_ref)))))
        assert mark is not None and mark.value == max(st.study_date for st in s.scalars(select(Study))).isoformat()
    again = ingest_dicomweb(url, orthanc.dicomweb_url, settings=settings, since=dt.date(1900, 1, 1), progress=False)
    assert (again.listed, again.current, again.staged, again.instances) == (N_STUDIES, N_STUDIES, 0, 0)
    assert again.scan is None and again.preprocessed == 0


def test_a_new_series_in_the_pacs_refreshes_its_study(pacs_run, orthanc, archive):
    """A new series arrives for one study: that study (only) is fetched again and refreshed in place."""
    url, settings, _ = pacs_run
    with session_scope(url) as s:
        before = {st.study_uid: (st.id, len(st.series)) for st in s.scalars(select(Study))}
        cines = {x.series_uid: st.study_uid for st in s.scalars(select(Study)) for x in st.series
                 if x.view in ("2ch", "3ch", "4ch", "sax") and x.n_phases > 1}  # fmt: skip
    target = sorted(before)[0]
    new_series = _add_series(orthanc, archive, target, {k for k, v in cines.items() if v == target})
    with session_scope(url) as s:
        day = s.scalar(select(Study.study_date).where(Study.study_uid == target))
    refreshed = ingest_dicomweb(url, orthanc.dicomweb_url, settings=settings, since=day, progress=False)
    assert refreshed.staged == 1 and refreshed.failed == 0
    with session_scope(url) as s:
        after = {st.study_uid: (st.id, len(st.series)) for st in s.scalars(select(Study))}
        uids = {x.series_uid for x in s.scalars(select(Study)).all() for x in x.series}
    assert after[target] == (before[target][0], before[target][1] + 1)
    assert {k: v for k, v in after.items() if k != target} == {k: v for k, v in before.items() if k != target}
    assert new_series in uids


def _add_series(orthanc: OrthancServer, archive: Path, study_uid: str, cines: set[str]) -> str:
    """Copy one cine series of the study (one of ``cines``, by the catalog's views: descriptions vary by site)
    under new UIDs into Orthanc; returns the new series UID."""
    series: dict[str, list[Path]] = {}
    for p in archive_files(archive / "dicom"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        if ds.StudyInstanceUID == study_uid and ds.SeriesInstanceUID in cines:
            series.setdefault(ds.SeriesInstanceUID, []).append(p)
    source = sorted(series.values(), key=len)[0]
    new_uid, out = generate_uid(), archive.parent / f"extra-{study_uid[-8:]}"
    out.mkdir(exist_ok=True)
    for i, p in enumerate(source):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID, ds.SeriesNumber = new_uid, 99
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(out / f"{i}.dcm")
    assert orthanc.upload(archive_files(out)) == len(source)
    return new_uid


def test_orthanc_stopped_mid_ingest_then_rerun_loses_and_doubles_nothing(orthanc, archive, tmp_path):
    url, settings = _catalog(tmp_path), make_settings(tmp_path / "data", pacs_concurrency=2, pacs_retries=1)
    seen = []

    def stop_after_first(outcome) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            orthanc.stop()

    try:
        first = ingest_dicomweb(
            url, orthanc.dicomweb_url, settings=settings, progress=False, on_staged=stop_after_first
        )
    finally:
        orthanc.start()
    assert first.staged >= 1 and first.failed >= 1 and first.staged + first.failed == N_STUDIES
    staging = settings.data_dir / "pacs"
    leftovers = [q for p in staging.iterdir() for q in (p / "tmp").rglob("*")]
    assert leftovers == [], "a half-fetched study was left behind"
    with session_scope(url) as s:
        errors = s.scalars(select(IngestError).where(IngestError.stage == "fetch")).all()
        assert len(errors) == first.failed
        assert {e.kind for e in errors} <= {"pacs_unreachable", "fetch_failed"}
        assert len(s.scalars(select(Study)).all()) == first.staged
        mark = s.scalar(select(IngestWatermark.value))
    earliest_failure = min(o.study.study_date for o in seen if o.status == "failed")
    assert mark == earliest_failure.isoformat()  # the next run lists the failed studies again

    second = ingest_dicomweb(url, orthanc.dicomweb_url, settings=settings, progress=False)
    assert second.failed == 0 and second.staged == first.failed
    with session_scope(url) as s:
        studies = s.scalars(select(Study)).all()
        assert len(studies) == N_STUDIES == len({st.study_uid for st in studies})
        assert not s.scalars(select(IngestError).where(IngestError.stage == "fetch")).all()
    staged_files = [p for p in staging.rglob("*.dcm") if "/studies/" in str(p)]
    assert len(staged_files) == orthanc.instance_count()


def test_unreachable_server_records_an_error_instead_of_crashing(tmp_path):
    url, settings = _catalog(tmp_path), make_settings(tmp_path / "data")
    dead = f"http://127.0.0.1:{pacs_support.free_port()}/dicom-web"
    summary = ingest_dicomweb(url, dead, settings=settings, progress=False)
    assert summary.listing_error and summary.staged == 0
    with session_scope(url) as s:
        (error,) = s.scalars(select(IngestError)).all()
    assert (error.stage, error.kind, error.path) == ("fetch", "pacs_unreachable", dead)


def test_basic_auth(tmp_path):
    server = OrthancServer(tmp_path / "orthanc", users={"cmr": "s3cret"})
    server.start()
    try:
        url = _catalog(tmp_path)
        wrong = make_settings(tmp_path / "data", pacs_auth="basic", pacs_user="cmr", pacs_password="nope")
        ingest_dicomweb(url, server.dicomweb_url, settings=wrong, progress=False)
        with session_scope(url) as s:
            assert [e.kind for e in s.scalars(select(IngestError))] == ["pacs_unauthorized"]
        right = make_settings(tmp_path / "data", pacs_auth="basic", pacs_user="cmr", pacs_password="s3cret")
        summary = ingest_dicomweb(url, server.dicomweb_url, settings=right, progress=False)
        assert summary.listing_error is None and summary.listed == 0
        with session_scope(url) as s:
            assert s.scalars(select(IngestError)).all() == []
    finally:
        server.stop()


def test_bearer_token_goes_into_the_authorization_header(tmp_path):
    session = make_session(PacsConfig.from_settings(make_settings(tmp_path, pacs_auth="bearer", pacs_token="tok")))
    assert session.headers["Authorization"] == "Bearer tok"
    with pytest.raises(ValueError, match="pacs_token"):
        PacsConfig.from_settings(make_settings(tmp_path, pacs_auth="bearer"))


def test_description_filter_keeps_non_cardiac_studies_out(orthanc, tmp_path):
    url = _catalog(tmp_path)
    settings = make_settings(tmp_path / "data", pacs_description_pattern=r"(?i)brain|neuro")
    summary = ingest_dicomweb(url, orthanc.dicomweb_url, settings=settings, progress=False)
    assert (summary.listed, summary.filtered, summary.staged) == (N_STUDIES, N_STUDIES, 0)
    again = ingest_dicomweb(url, orthanc.dicomweb_url, settings=settings, since=dt.date(1900, 1, 1), progress=False)
    assert again.current == N_STUDIES  # remembered as filtered: not looked at again until the study changes
    with session_scope(url) as s:
        assert s.scalars(select(Study)).all() == []
