"""DICOM push (``cmr receive``): pynetdicom's SCU and the real Orthanc push phantom studies; durability under kill -9;
duplicates change nothing; unsupported transfer syntaxes and unknown callers are refused at association."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom.uid import MPEG2MPML, ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.models import IngestError, Series, Study, StudyState
from indexer.pipeline import Ingest
from indexer.sources.receiver import InstanceStore, ReceivedSource, Receiver, key
from migrations.apply import upgrade
from tests.indexer import pacs_support
from tests.indexer.pacs_support import archive_files, free_port, make_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict[str, list[Path]]:
    """Files per study UID of a 2-study phantom archive."""
    root = pacs_support.phantom_archive(tmp_path_factory.mktemp("push"), 2, seed=23)
    out: dict[str, list[Path]] = defaultdict(list)
    for path in archive_files(root / "dicom"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except Exception:
            continue
        out[str(ds.StudyInstanceUID)].append(path)
    return dict(out)


def push(files: list[Path], port: int, *, calling: str = "SCANNER1", contexts=None) -> list[int]:
    """C-STORE every file over one association; the status of each (-1: not sent)."""
    ae = AE(ae_title=calling)
    datasets = [pydicom.dcmread(f) for f in files]
    for uid in sorted({str(d.SOPClassUID) for d in datasets}):
        for ts in contexts or [ExplicitVRLittleEndian, datasets[0].file_meta.TransferSyntaxUID]:
            ae.add_requested_context(uid, ts)
    assoc = ae.associate("127.0.0.1", port, ae_title="CMRSEARCH")
    assert assoc.is_established
    statuses = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
    finally:
        assoc.release()
    return statuses


def _catalog(url: str) -> tuple[int, int, int, list[str]]:
    with session_scope(url) as session:
        return (session.scalar(select(func.count()).select_from(Study)),
                session.scalar(select(func.count()).select_from(Series)),
                session.scalar(select(func.count()).select_from(IngestError)),
                [s for (s,) in session.execute(select(Study.state))])


def _wait(predicate, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def _receiver(tmp_path: Path, **kw):
    settings = make_settings(tmp_path / "data")
    url = settings.resolved_database_url()
    upgrade(url)
    store = InstanceStore(settings.received_dir, quiet_s=kw.pop("quiet_s", 0.5))
    handed: list[Path] = []

    def ingest(folders: list[Path]) -> None:
        for folder in folders:
            handed.append(folder)
            Ingest(settings, ReceivedSource(folder, ae_title="CMRSEARCH"), db_url=url).run(progress=False)

    receiver = Receiver(store, ae_title="CMRSEARCH", host="127.0.0.1", port=0, on_complete=ingest, poll_s=0.2, **kw)
    receiver.start()
    return receiver, store, url, handed


def test_pushed_study_is_ingested_once_complete_and_a_duplicate_push_changes_nothing(tmp_path, studies, caplog):
    caplog.set_level(logging.INFO)
    uid, files = next(iter(studies.items()))
    receiver, store, url, handed = _receiver(tmp_path)
    try:
        assert set(push(files, receiver.port)) == {0x0000}
        _wait(lambda: _catalog(url)[3] == [StudyState.PREPROCESSED])
        with session_scope(url) as session:
            study = session.scalar(select(Study))
            assert study.study_uid == uid and study.source == "dimse" and "sax" in study.views
        before = _catalog(url)
        held = sorted(p.name for p in (store.studies / key(uid)).iterdir())
        assert len(held) == len(files) and len(handed) == 1
        # the same study again: acknowledged, nothing written, nothing handed on, the catalog unchanged
        assert set(push(files, receiver.port)) == {0x0000}
        time.sleep(1.5)
        assert store.pending() == 0 and len(handed) == 1 and _catalog(url) == before
    finally:
        receiver.stop()
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    for identifier in (str(ds.PatientName), str(ds.PatientID), str(ds.AccessionNumber), uid):
        assert identifier not in caplog.text, "the receiver's log names the patient or study"
    assert "association from AE SCANNER1" in caplog.text


def test_unsupported_transfer_syntax_and_unknown_caller_are_refused(tmp_path, studies):
    receiver, _, _, _ = _receiver(tmp_path, allowed_callers=["SCANNER1"])
    try:
        ae = AE(ae_title="SCANNER1")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", MPEG2MPML)  # MR Image Storage as MPEG-2 video
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", receiver.port, ae_title="CMRSEARCH")
        assert assoc.is_established
        assert [c.transfer_syntax[0] for c in assoc.accepted_contexts] == [ExplicitVRLittleEndian]
        assert [c.result for c in assoc.rejected_contexts] == [0x04]  # transfer syntaxes not supported
        assoc.release()
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context("1.2.840.10008.5.1.4.1.1.4", ExplicitVRLittleEndian)
        assert not stranger.associate("127.0.0.1", receiver.port, ae_title="CMRSEARCH").is_established
    finally:
        receiver.stop()


def test_kill_9_mid_association_loses_no_acknowledged_instance(tmp_path, studies):
    """Every instance the receiver acknowledged before kill -9 is on disk whole, and a restart ingests it."""
    uid, files = next(iter(studies.items()))
    port = free_port()
    env = {**os.environ, "CMR_DATA_DIR": str(tmp_path / "data"), "CMR_WORKERS": "1", "HF_HUB_OFFLINE": "1"}

    def start(quiet: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cmr", "receive", "--port", str(port), "--quiet-s", quiet],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    proc = start("600")
    try:
        ae = AE(ae_title="SCANNER1")
        ds0 = pydicom.dcmread(files[0])
        ae.add_requested_context(ds0.SOPClassUID, ds0.file_meta.TransferSyntaxUID)
        _wait(lambda: _listening(port), timeout=120)
        assoc = ae.associate("127.0.0.1", port, ae_title="CMRSEARCH")
        acknowledged = []
        for n, path in enumerate(files):
            ds = pydicom.dcmread(path)
            if n == 12:
                proc.send_signal(signal.SIGKILL)  # mid-association: the SCU is still sending
                proc.wait(timeout=30)
            if not assoc.is_established:
                break
            try:
                status = assoc.send_c_store(ds)
            except RuntimeError:  # the association went down under the call
                break
            if status and int(status.Status) == 0:
                acknowledged.append(str(ds.SOPInstanceUID))
        assoc.release()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acknowledged) >= 12
    incoming = tmp_path / "data" / "received" / "incoming" / key(uid)
    for sop in acknowledged:
        held = pydicom.dcmread(incoming / f"{key(sop)}.dcm")
        assert str(held.SOPInstanceUID) == sop and held.pixel_array.size > 0
    proc = start("0.2")
    try:
        url = f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}"
        _wait(lambda: Path(url.removeprefix("sqlite:///")).exists() and _has_study(url, uid), timeout=240)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not incoming.exists() and not list((tmp_path / "data" / "received" / "incoming").glob("*/.*.tmp"))


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _has_study(url: str, uid: str) -> bool:
    try:
        with session_scope(url) as session:
            return session.scalar(select(Study).where(Study.study_uid == uid)) is not None
    except Exception:
        return False


@pytest.mark.skipif(not pacs_support.available(), reason="Orthanc is not installed (apt-get install orthanc)")
def test_orthanc_pushes_a_study_to_the_receiver(tmp_path, studies):
    uid, files = next(iter(studies.items()))
    receiver, _, url, _ = _receiver(tmp_path)
    orthanc = pacs_support.OrthancServer(tmp_path / "orthanc",
                                         modalities={"cmr": ["CMRSEARCH", "127.0.0.1", receiver.port]})
    orthanc.start()
    try:
        assert orthanc.upload(files) == len(files)
        (study_id,) = requests.get(f"{orthanc.url}/studies", timeout=10).json()
        answer = requests.post(f"{orthanc.url}/modalities/cmr/store", json={"Resources": [study_id],
                                                                             "Synchronous": True}, timeout=300)
        assert answer.ok, answer.text
        _wait(lambda: _catalog(url)[3] == [StudyState.PREPROCESSED])
        with session_scope(url) as session:
            assert session.scalar(select(Study.study_uid)) == uid
    finally:
        orthanc.stop()
        receiver.stop()
