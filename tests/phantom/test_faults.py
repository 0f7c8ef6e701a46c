from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from phantom.faults import FAULT_KINDS, STUDY_OK, plan_faults
from tests.phantom.helpers import read_csv


def test_plan_covers_every_kind_at_40_studies() -> None:
    plan = plan_faults(np.random.default_rng(0), 40, 0.05)
    assert set(plan.values()) == set(FAULT_KINDS)
    assert plan_faults(np.random.default_rng(0), 40, 0.0) == {}


def test_every_fault_is_listed_and_on_disk(archive) -> None:
    root, _ = archive
    rows = read_csv(root / "faults.csv")
    assert {r["kind"] for r in rows} == set(FAULT_KINDS)
    truth_uids = {r["study_uid"] for r in read_csv(root / "ground_truth.csv")}
    for r in rows:
        assert (root / r["path"]).exists(), r
        assert int(r["study_ok"]) == STUDY_OK[r["kind"]]
        if r["kind"] != "non_mr":
            assert r["study_uid"] in truth_uids
        else:
            assert r["study_uid"] not in truth_uids


def _row(root: Path, kind: str) -> dict[str, str]:
    return next(r for r in read_csv(root / "faults.csv") if r["kind"] == kind)


def test_fault_contents(archive) -> None:
    root, _ = archive
    trunc = root / _row(root, "truncated")["path"]
    with pytest.raises(Exception):  # noqa: B017 - header or pixel data is cut
        pydicom.dcmread(trunc).pixel_array  # noqa: B018

    dup = root / _row(root, "duplicate_sop")["path"]
    uid = pydicom.dcmread(dup, stop_before_pixels=True).SOPInstanceUID
    twins = [
        p
        for p in dup.parent.iterdir()
        if p != dup and pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == uid
    ]
    assert len(twins) == 1

    sr = pydicom.dcmread(root / _row(root, "no_pixel_data")["path"])
    assert "PixelData" not in sr and sr.StudyInstanceUID == _row(root, "no_pixel_data")["study_uid"]

    ct_dir = root / _row(root, "non_mr")["path"]
    assert {pydicom.dcmread(p).Modality for p in ct_dir.rglob("*.dcm")} == {"CT"}

    odd = pydicom.dcmread(root / _row(root, "odd_matrix")["path"])
    sizes = {
        (d.Rows, d.Columns)
        for d in (
            pydicom.dcmread(p, stop_before_pixels=True)
            for p in (root / _row(root, "odd_matrix")["path"]).parent.iterdir()
        )
    }
    assert len(sizes) == 2 and (odd.Rows, odd.Columns) in sizes

    mt = root / _row(root, "missing_trigger_time")["path"]
    cines = [pydicom.dcmread(p, stop_before_pixels=True) for p in mt.rglob("*") if p.is_file()]
    cines = [d for d in cines if "CardiacNumberOfImages" in d and int(d.CardiacNumberOfImages) > 1]
    assert cines and all("TriggerTime" not in d for d in cines)

    nd = root / _row(root, "non_dicom")["path"]
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(nd)
