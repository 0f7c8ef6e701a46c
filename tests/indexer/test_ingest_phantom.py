"""Ingest of the phantom archive: views against ground truth on every site, renamed series, kill and resume."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import IngestError, Study
from cmrclip.clips import CLIP_SIZE, CLIP_SPACING_MM, load_clip
from indexer.pipeline import ingest_folder
from tests.indexer.pacs_support import phantom_archive

CINE = {"sax", "2ch", "3ch", "4ch"}


def _truth(archive: Path) -> dict[str, dict]:
    with (archive / "ground_truth.csv").open(newline="") as fh:
        return {r["study_uid"]: r for r in csv.DictReader(fh)}


def _views(url: str) -> dict[str, set[str]]:
    with session_scope(url) as s:
        return {st.study_uid: set(st.views) for st in s.scalars(select(Study))}


def test_views_match_ground_truth_on_every_site(db_url, phantom_archive, tmp_path):
    ingest_folder(db_url, phantom_archive / "dicom", tmp_path / "clips", reports=phantom_archive / "reports.csv",
                  progress=False)
    truth = _truth(phantom_archive)
    got = _views(db_url)
    assert set(got) == set(truth)
    assert {t["site"] for t in truth.values()} == {"site_a", "site_b", "site_c"}
    for uid, t in truth.items():
        assert got[uid] == set(t["views"].split(";")), (t["site"], uid)
    with session_scope(db_url) as s:
        studies = s.scalars(select(Study)).all()
        assert all(st.state == "preprocessed" for st in studies)
        with_report = sum(st.report is not None for st in studies)
        assert with_report >= 4 and all(st.report.impression for st in studies if st.report)


def test_crop_contains_ground_truth_lv_centre(sqlite_url, phantom_archive, tmp_path):
    """The heart found by preprocessing is within a quarter crop of the phantom's true LV centre."""
    from indexer.clips.preprocess import SeriesInput, make_clips

    ingest_folder(sqlite_url, phantom_archive / "dicom", tmp_path / "clips", progress=False)
    truth = _truth(phantom_archive)
    with session_scope(sqlite_url) as s:
        for st in s.scalars(select(Study)):
            inputs = [
                SeriesInput(se.view, se.series_number or 0, se.rows, se.columns, se.pixel_spacing_mm, se.frames)
                for se in st.series
            ]
            result = make_clips(inputs)
            sax_normal = np.array(next(se.normal for se in st.series if se.view == "sax"))
            t = truth[st.study_uid]
            lv = np.array([float(t["lv_center_x"]), float(t["lv_center_y"]), float(t["lv_center_z"])])
            offset = result.center - lv
            in_plane = offset - (offset @ sax_normal) * sax_normal
            assert np.linalg.norm(in_plane) < CLIP_SIZE * CLIP_SPACING_MM / 4, (t["site"], st.study_uid)
            assert load_clip(Path(st.clip_path))["sax"].shape == (3, 16, CLIP_SIZE, CLIP_SIZE)


def test_views_from_geometry_when_names_are_unknown(sqlite_url, phantom_archive, tmp_path):
    """Replace every series description by an uninformative one: cine views still come out right."""
    root = tmp_path / "renamed"
    shutil.copytree(phantom_archive / "dicom", root)
    for path in root.rglob("*"):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path)
            except Exception:
                continue
            ds.SeriesDescription = f"series {ds.get('SeriesNumber', 0)}"
            ds.save_as(path)
    ingest_folder(sqlite_url, root, tmp_path / "clips", progress=False)
    truth = _truth(phantom_archive)
    for uid, views in _views(sqlite_url).items():
        assert views & CINE == set(truth[uid]["views"].split(";")) & CINE, uid


def _state(url: str, clips: Path) -> tuple:
    with session_scope(url) as s:
        studies = sorted((st.study_uid, tuple(st.views), st.state, st.fingerprint) for st in s.scalars(select(Study)))
        errors = sorted((e.path, e.kind) for e in s.scalars(select(IngestError)))
    arrays = {p.name: {k: v.tobytes() for k, v in load_clip(p).items()} for p in sorted(clips.rglob("*.npz"))}
    return studies, errors, arrays


def test_killed_ingest_resumes_to_the_same_state(phantom_archive, tmp_path):
    env = {**os.environ, "CMR_WORKERS": "1"}
    runs = {}
    for name in ("uninterrupted", "killed"):
        data = tmp_path / name
        run_env = {**env, "CMR_DATA_DIR": str(data)}
        cmd = [sys.executable, "-m", "cmr", "ingest", str(phantom_archive / "dicom"),
               "--reports", str(phantom_archive / "reports.csv")]
        if name == "killed":
            proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 120
            clips = data / "clips"
            while time.time() < deadline and len(list(clips.rglob("*.npz"))) < 2:
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert len(list(clips.rglob("*.npz"))) < 6, "ingest finished before it could be killed"
        subprocess.run(cmd, env=run_env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs[name] = _state(f"sqlite:///{data / 'catalog.sqlite'}", data / "clips")
    assert runs["killed"] == runs["uninterrupted"]


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (the ingest and its workers inherit it)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                status = (environ.parent / "status").read_text()
                if "\nState:\tZ" not in status:  # a zombie is gone, only not yet reaped
                    pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_at_a_random_point_leaves_no_worker_and_resumes(seed, tmp_path_factory, tmp_path):
    """kill -9 of `cmr ingest` (2 workers) at a random moment: its workers die with it, and the rerun ends in
    the state of an uninterrupted run."""
    archive = phantom_archive(tmp_path_factory.getbasetemp(), 3, seed=4)
    cmd = [sys.executable, "-m", "cmr", "ingest", str(archive / "dicom"), "--reports", str(archive / "reports.csv")]
    base = {k: v for k, v in os.environ.items() if k != "CMR_DATABASE_URL"}
    reference = tmp_path_factory.getbasetemp() / "kill-reference"
    if not (reference / "catalog.sqlite").exists():
        subprocess.run(cmd, env={**base, "CMR_DATA_DIR": str(reference), "CMR_WORKERS": "2"}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)  # fmt: skip
    marker = f"CMR_TEST_RUN={uuid.uuid4().hex}"
    env = {**base, "CMR_DATA_DIR": str(tmp_path), "CMR_WORKERS": "2", marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(_processes_with(marker)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # until the first worker pool (the header scan) is up
    time.sleep(random.Random(seed).uniform(0.0, 1.5))  # somewhere in the scan or the preprocessing
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while _processes_with(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == [], "worker processes outlived the killed ingest"
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert _processes_with(marker) == []
    got = _state(f"sqlite:///{tmp_path / 'catalog.sqlite'}", tmp_path / "clips")
    want = _state(f"sqlite:///{reference / 'catalog.sqlite'}", reference / "clips")
    assert got == want
