"""A hostile-input corpus for ingest (issue 12): the batch finishes, every bad input is an error row with a reason,
every good study is in the catalog as a clean archive gives it.

The corpus is a small phantom archive with, beside its studies: a zero-byte file, random bytes, non-DICOM files
(``.DS_Store``, text), a CT image, a file truncated inside its header, a study whose only file is truncated inside
its pixel data, a FIFO, a symlink to ``/dev/zero``, symlink loops (to itself, two links to each other, a folder
link to its parent) and a dangling link (a file deleted mid-scan looks the same); and a report export in cp1252
with a row without accession, a JSON-looking line, a field over the CSV size limit and an accession given twice
with two texts.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import IngestError, Report, Study
from indexer.pipeline import Ingest, ingest_folder
from indexer.reports import RowProblem, import_reports, read_report_export
from migrations.apply import upgrade
from tests.indexer.pacs_support import archive_files, make_settings, phantom_archive

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks"),
]
N_STUDIES = 2
GERMAN = "Befund: Größe und Funktion des linken Ventrikels unauffällig. Beurteilung: Normalbefund."


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return phantom_archive(tmp_path_factory.getbasetemp(), N_STUDIES, seed=21)


def _copy_as_new_study(src: Path, dst: Path, **changes) -> None:
    ds = pydicom.dcmread(src)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.AccessionNumber = f"C{generate_uid()[-7:]}"  # its own: a report links to one study
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(dst)


def build_corpus(pristine: Path, out: Path) -> tuple[Path, Path, dict[str, str]]:
    """The hostile archive and report export; bad input → the error kind it must give."""
    root = out / "dicom"
    shutil.copytree(pristine / "dicom", root, symlinks=True)
    junk = root / "junk"
    junk.mkdir()
    image = next(p for p in archive_files(pristine / "dicom") if pydicom.misc.is_dicom(p))
    bad: dict[str, str] = {}

    def plant(name: str, kind: str) -> Path:
        bad[str(junk / name)] = kind
        return junk / name

    plant("empty.dcm", "not_dicom").write_bytes(b"")
    plant("random.bin", "not_dicom").write_bytes(os.urandom(4096))
    plant(".DS_Store", "not_dicom").write_bytes(b"\x00\x00\x00\x01Bud1" + os.urandom(200))
    plant("notes.txt", "not_dicom").write_text("scanned on the old console, see paper file\n")
    _copy_as_new_study(image, plant("ct.dcm", "not_mr_image"), Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2")
    plant("header-cut.dcm", "not_dicom").write_bytes(image.read_bytes()[:300])
    os.mkfifo(plant("pipe.dcm", "not_a_file"))
    os.symlink("/dev/zero", plant("zero.dcm", "not_a_file"))
    os.symlink("self.dcm", plant("self.dcm", "not_a_file"))
    os.symlink("b.dcm", plant("a.dcm", "not_a_file"))
    os.symlink("a.dcm", plant("b.dcm", "not_a_file"))
    os.symlink(".", plant("again", "not_a_file"))  # a folder link back to its own folder
    os.symlink("gone.dcm", plant("dangling.dcm", "unreadable"))
    cut = junk / "pixels-cut.dcm"  # a study of one file whose pixel data ends early: it cannot make a clip
    _copy_as_new_study(image, cut)
    cut.write_bytes(cut.read_bytes()[:-2000])

    with (pristine / "reports.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    export = out / "ris_cp1252.csv"
    with export.open("w", newline="", encoding="cp1252") as fh:
        writer = csv.writer(fh)
        writer.writerow(["accession", "report_date", "report_text"])
        writer.writerows([r["accession"], r["report_date"], r["report_text"]] for r in rows)  # rows 1..n
        writer.writerow(["B0000001", "2020-01-02", GERMAN])
        writer.writerow(["", "2020-01-02", "a report without its accession number"])
        writer.writerow(["B0000002", "2020-01-02", "x" * 200_000])  # over the CSV field size limit
        writer.writerow(["B0000003", "2020-01-02", "Impression: normal study."])
        writer.writerow(["B0000003", "2020-01-03", "Impression: dilated left ventricle."])
    return root, export, bad


def _content(url: str) -> dict[str, tuple]:
    with session_scope(url) as s:
        out = {}
        for st in s.scalars(select(Study)):
            series = tuple(sorted((x.series_uid, x.view, x.n_slices, x.n_phases, len(x.frames)) for x in st.series))
            report = st.report.text if st.report else None
            out[st.study_uid] = (tuple(st.views), series, st.accession, st.state, st.fingerprint is not None, report)
        return out


def _catalog(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path / 'catalog.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def corpus(pristine, tmp_path_factory):
    return build_corpus(pristine, tmp_path_factory.mktemp("hostile"))


def test_hostile_archive_ingests_around_every_bad_input(pristine, corpus, tmp_path):
    root, export, bad = corpus
    clean = _catalog(tmp_path / "clean")
    ingest_folder(clean, pristine / "dicom", tmp_path / "clean" / "clips", reports=pristine / "reports.csv",
                  progress=False)  # fmt: skip

    data = tmp_path / "hostile"
    env = {**os.environ, "CMR_DATA_DIR": str(data), "CMR_WORKERS": "2"}
    env.pop("CMR_DATABASE_URL", None)
    run = subprocess.run([sys.executable, "-m", "cmr", "ingest", str(root), "--reports", str(export)], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    url = f"sqlite:///{data / 'catalog.sqlite'}"

    with session_scope(url) as s:
        errors = s.scalars(select(IngestError)).all()
        reports = {r.accession: r for r in s.scalars(select(Report))}
    by_path = {e.path: e for e in errors}
    for path, kind in bad.items():
        error = by_path.get(str(Path(path).parent.resolve() / Path(path).name))
        assert error is not None, f"no error row for {Path(path).name}"
        assert (error.kind, bool(error.reason)) == (kind, True), (Path(path).name, error.kind, error.reason)
    cut_study = pydicom.dcmread(root / "junk" / "pixels-cut.dcm", stop_before_pixels=True).StudyInstanceUID
    assert any(e.study_uid == cut_study and e.stage == "preprocess" for e in errors)

    ref = str(export.resolve())
    report_errors = {e.path.split("#")[1]: e.kind for e in errors if e.stage == "report"}
    n = len(list(csv.DictReader(pristine.joinpath("reports.csv").open(newline=""))))
    assert report_errors == {
        f"row {n + 2}": "bad_report_row", f"row {n + 3}": "bad_report_row", f"row {n + 5}": "duplicate_accession"
    }, report_errors
    assert all(e.path.startswith(ref) for e in errors if e.stage == "report")
    assert reports["B0000001"].text == GERMAN  # cp1252 read as such
    assert "dilated" in reports["B0000003"].text  # the later row is kept, and the conflict recorded

    hostile = _content(url)
    good = _content(clean)
    assert {k: hostile[k] for k in good} == good
    assert set(hostile) - set(good) == {cut_study}


def test_deidentified_ingest_records_the_bad_files_too(corpus, tmp_path):
    """Issue 12 item 12: with --deidentify, bad files are error rows (named without the archive path)."""
    root, export, bad = corpus
    url = _catalog(tmp_path)
    settings = make_settings(tmp_path / "data", deid_secret="s3cret")
    summary = Ingest.folder(settings, root, deidentify=True, db_url=url).run(reports=export, progress=False)
    assert summary.staged == N_STUDIES + 2 and summary.failed == 0  # + the CT study and the cut one: DICOM both
    with session_scope(url) as s:
        fetch = s.scalars(select(IngestError).where(IngestError.stage == "fetch")).all()
        scan = s.scalars(select(IngestError).where(IngestError.stage == "scan")).all()
    # one row per bad file; the CT image is a readable DICOM study (staged, then recorded by the scan)
    assert sorted(e.kind for e in fetch) == sorted(k for k in bad.values() if k != "not_mr_image")
    assert [e.kind for e in scan] == ["not_mr_image"]
    assert all(e.reason and "junk" not in e.path and e.path.startswith(str(root.resolve()) + "#file-") for e in fetch)
    again = Ingest.folder(settings, root, deidentify=True, db_url=url).run(progress=False)
    assert again.staged == 0
    with session_scope(url) as s:
        assert len(s.scalars(select(IngestError).where(IngestError.stage == "fetch")).all()) == len(fetch)


def test_report_exports_that_cannot_be_read_are_recorded(sqlite_url, tmp_path):
    from sqlalchemy.orm import sessionmaker

    from catalog.db import get_engine

    db = sessionmaker(bind=get_engine(sqlite_url))
    garbage = tmp_path / "ris.jsonl"
    garbage.write_bytes(b'{"accession": "A1", "report_text": "Impression: normal."}\nnot json\n[1, 2]\n\n')
    items = list(read_report_export(garbage))
    assert [type(i).__name__ for i in items] == ["ReportRow", "RowProblem", "RowProblem"]
    counts = import_reports(db, items, ref=str(garbage))
    assert (counts.imported, counts.rejected, counts.conflicts) == (1, 2, 0)
    binary = tmp_path / "ris.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    items = list(read_report_export(binary))
    assert items and all(isinstance(i, RowProblem) for i in items)
    missing = list(read_report_export(tmp_path / "nope.csv"))
    assert len(missing) == 1 and missing[0].kind == "report_unreadable"
