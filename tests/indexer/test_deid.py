"""De-identification: a de-identified ingest of the phantom archive leaks none of its planted identifiers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import MetaData, select

import catalog.identity  # noqa: F401  (the identity table belongs to the catalog's metadata)
from catalog.db import get_engine, session_scope
from catalog.identity import reidentify
from catalog.models import Report, Study
from cmrclip.language.scrub import deidentify_report
from indexer.deid.dicom import DeidConfig, Deidentifier
from indexer.dicom.headers import parse_age
from indexer.pipeline import Ingest
from migrations.apply import upgrade
from search.privacy import export_record
from tests.indexer.pacs_support import archive_files, make_settings, phantom_archive

pytestmark = pytest.mark.timeout(600)
N_STUDIES = 5
SECRET = "test-secret"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return phantom_archive(tmp_path_factory.getbasetemp(), N_STUDIES, seed=3)


def _planted(archive: Path) -> tuple[set[str], dict[str, dict]]:
    """Every identifier the phantom planted (names, MRNs, birth dates, accessions), and the headers by study."""
    needles: set[str] = set()
    studies: dict[str, dict] = {}
    for path in archive_files(archive / "dicom"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        name = str(ds.PatientName)
        birth = dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date()
        needles |= {ds.PatientID, ds.AccessionNumber, ds.PatientBirthDate}
        needles |= {birth.isoformat(), birth.strftime("%d.%m.%Y"), birth.strftime("%d/%m/%Y")}
        needles |= {p for p in name.split("^") if len(p) > 2} | {p.title() for p in name.split("^") if len(p) > 2}
        needles |= {str(ds.get(k, "")) for k in ("ReferringPhysicianName", "InstitutionName") if ds.get(k)}
        studies[ds.StudyInstanceUID] = {"age": parse_age(ds.PatientAge), "sex": ds.PatientSex, "pid": ds.PatientID,
                                        "acc": ds.AccessionNumber, "date": ds.StudyDate}  # fmt: skip
    with (archive / "reports.csv").open(newline="") as fh:
        needles |= {row["accession"] for row in csv.DictReader(fh)}
    return {n for n in needles if n}, studies


def ingest_folder_deidentified(db_url: str, root: Path, *, settings, **run):
    return Ingest.folder(settings, root, deidentify=True, db_url=db_url).run(**run)


def _catalog(path: Path) -> str:
    url = f"sqlite:///{path / 'catalog.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def deid_run(archive, tmp_path_factory):
    d = tmp_path_factory.mktemp("deid-run")
    url, settings = _catalog(d), make_settings(d / "data", deid_secret=SECRET)
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        summary = ingest_folder_deidentified(url, archive / "dicom", settings=settings,
                                             reports=archive / "reports.csv", progress=False)  # fmt: skip
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old_level)
    return url, settings, summary, handler.lines


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _dump_catalog(url: str) -> str:
    """Every value of every column of every table, as text."""
    meta = MetaData()
    meta.reflect(get_engine(url))
    out = []
    with get_engine(url).connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                out.extend(str(v) for v in row)
    return "\n".join(out)


def test_no_planted_identifier_survives_a_deidentified_ingest(deid_run, archive):
    url, settings, summary, log_lines = deid_run
    assert summary.staged == N_STUDIES and summary.failed == 0 and summary.preprocessed == N_STUDIES
    needles, _ = _planted(archive)
    with session_scope(url) as s:
        studies = s.scalars(select(Study)).all()
        rows = [export_record(SimpleNamespace(study_id=st.id, **{c: getattr(st, c) for c in (
            "study_uid", "accession", "patient_id", "patient_name", "study_date", "patient_key", "patient_age",
            "patient_sex", "institution", "manufacturer", "field_strength", "views")}), "clinician")
            for st in studies]  # fmt: skip
    export = io.StringIO()
    writer = csv.DictWriter(export, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    haystacks = {
        "catalog": _dump_catalog(url),
        "file names": "\n".join(str(p) for p in settings.data_dir.rglob("*")),
        "logs": "\n".join(log_lines),
        "csv export": export.getvalue(),
    }
    leaks = {where: sorted(n for n in needles if n in text) for where, text in haystacks.items()}
    assert leaks == {where: [] for where in haystacks}
    assert any(p.suffix == ".npz" for p in settings.clip_dir.rglob("*"))


def test_characteristics_kept_dates_shifted_reports_linked(deid_run, archive):
    url, _settings, summary, _ = deid_run
    _, original = _planted(archive)
    deid = Deidentifier(DeidConfig(SECRET))
    with session_scope(url) as s:
        by_uid = {st.study_uid: st for st in s.scalars(select(Study))}
        for uid, o in original.items():
            st = by_uid[deid.uid(uid)]
            assert (st.patient_age, st.patient_sex) == (o["age"], o["sex"])
            assert st.patient_weight_kg and st.patient_height_m
            assert st.patient_name is None and st.patient_birth_date is None
            assert st.patient_id == deid.pseudonyms.value("PatientID", o["pid"])
            assert st.accession == deid.pseudonyms.value("AccessionNumber", o["acc"])
            shift = (st.study_date - dt.date(int(o["date"][:4]), int(o["date"][4:6]), int(o["date"][6:]))).days
            assert shift == deid.pseudonyms.shift_days(o["pid"]) < 0
        linked = s.scalars(select(Report).where(Report.study_id.is_not(None))).all()
        assert len(linked) == summary.reports_imported > 0
        assert all(r.accession == r.study.accession for r in linked)


def test_uids_map_the_same_across_runs_and_the_mapping_is_for_clinicians(deid_run, archive, tmp_path):
    url, *_ = deid_run
    one_study = next(p for p in (archive / "dicom").glob("*/*/*") if p.is_dir())
    other = _catalog(tmp_path)
    settings = make_settings(tmp_path / "data", deid_secret=SECRET, deid_keep_mapping=True)
    ingest_folder_deidentified(other, one_study, settings=settings, progress=False)
    with session_scope(url) as s:
        first = {(st.study_uid, x.series_uid) for st in s.scalars(select(Study)) for x in st.series}
    with session_scope(other) as s:
        (study,) = s.scalars(select(Study)).all()
        second = {(study.study_uid, x.series_uid) for x in study.series}
        original = reidentify(s, "study", study.study_uid, role="clinician")
        with pytest.raises(PermissionError):
            reidentify(s, "study", study.study_uid, role="researcher")
    assert second <= first
    uid = pydicom.dcmread(next(p for p in one_study.rglob("*") if p.is_file()), stop_before_pixels=True)
    assert original == uid.StudyInstanceUID


def test_profile_removes_private_tags_marks_the_method_and_year_mode():
    ds = Dataset()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = "12345678", "DOE^JANE", "19600102"
    ds.StudyDate, ds.StudyInstanceUID, ds.SOPClassUID = "20200315", "1.2.3.4", "1.2.840.10008.5.1.4.1.1.4"
    ds.SeriesDescription = "CINE SAX DOE"
    ds.add_new(0x00091001, "LO", "private stuff")
    ds.add_new(0x00091010, "LO", "DOE^JANE")
    out = Deidentifier(DeidConfig(SECRET, date_mode="year")).apply(ds)
    assert out.PatientAge == "060Y" and out.PatientBirthDate == "" and out.PatientName == ""
    assert out.StudyDate == "20200101" and out.StudyInstanceUID.startswith("2.25.")
    assert out.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert not any(e.tag.is_private for e in out)
    assert out.SeriesDescription == "CINE SAX [NAME]"
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113108"} <= codes
    with pytest.raises(ValueError, match="secret"):
        DeidConfig("")


def test_report_text_loses_identifiers_in_every_spelling():
    text = (
        "Patient: MUELLER, Anna  MRN: 12345678  Acc: A1234567  Date: 2020-03-15\n"
        "Name: Anna Mueller | DOB: 02.01.1960 | ID 12345678\nCMR REPORT  Pt Kim, Klaus  Hosp no 99887766  "
        "Study date 15/03/2020. Compared with the study of March 4, 2019. Referred by SMITH^JOHN.\n"
        "Impression: dilated LV, EF 35%."
    )
    known = {
        "names": ["MUELLER^ANNA", "SMITH^JOHN"],
        "ids": {"12345678": "PAT1", "A1234567": "ACC1"},
        "birth_date": dt.date(1960, 1, 2),
        "date": lambda d: (d - dt.timedelta(days=10)).isoformat(),
    }
    out = deidentify_report(text, known)
    for needle in ("MUELLER", "Mueller", "Anna", "12345678", "A1234567", "1960", "2020-03-15", "Kim", "Klaus",
                   "99887766", "SMITH", "JOHN", "15/03/2020", "March 4, 2019"):  # fmt: skip
        assert needle not in out
    assert "ACC1" in out and "PAT1" in out and "2020-03-05" in out and "dilated LV, EF 35%" in out


def test_deidentified_archive_gives_the_same_clips_hence_the_same_ranking(deid_run, archive, tmp_path):
    """What the model sees (every clip array) is bit-identical after de-identification, so the same checkpoint
    embeds every study to the same vector and every query ranks them the same: search quality is unchanged."""
    import numpy as np

    from cmrclip.clips import load_clip
    from indexer.pipeline import ingest_folder

    url, *_ = deid_run
    plain = _catalog(tmp_path)
    ingest_folder(plain, archive / "dicom", tmp_path / "clips", progress=False)
    deid = Deidentifier(DeidConfig(SECRET))
    with session_scope(plain) as s:
        originals = {st.study_uid: (st.clip_path, sorted(st.views)) for st in s.scalars(select(Study))}
    with session_scope(url) as s:
        mapped = {st.study_uid: (st.clip_path, sorted(st.views)) for st in s.scalars(select(Study))}
    assert len(originals) == N_STUDIES
    for uid, (clip, views) in originals.items():
        other_clip, other_views = mapped[deid.uid(uid)]
        assert views == other_views
        a, b = load_clip(Path(clip)), load_clip(Path(other_clip))
        assert a.keys() == b.keys()
        for view in a:
            np.testing.assert_array_equal(a[view], b[view])
