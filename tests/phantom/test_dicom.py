from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom

from tests.phantom.helpers import fault_paths, read_csv

MR = "1.2.840.10008.5.1.4.1.1.4"


_CACHE: dict[Path, list[tuple[Path, pydicom.Dataset]]] = {}


def _good_mr_files(root: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """Every MR file of the archive except planted faults, read once per archive."""
    if root not in _CACHE:
        _CACHE[root] = _read_good(root)
    return _CACHE[root]


def _read_good(root: Path) -> list[tuple[Path, pydicom.Dataset]]:
    faults = fault_paths(root)
    faulty_dirs = [k for k, v in faults.items() if v == "non_mr"]
    out = []
    for p in sorted((root / "dicom").rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel in faults or any(rel.startswith(d + "/") for d in faulty_dirs):
            continue
        out.append((p, pydicom.dcmread(p)))
    return out


def test_every_file_reads_and_decodes(archive) -> None:
    root, _ = archive
    files = _good_mr_files(root)
    syntaxes = set()
    for p, ds in files:
        assert ds.SOPClassUID == MR, p
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "MR"
        arr = ds.pixel_array
        assert arr.shape == (ds.Rows, ds.Columns) and arr.dtype == np.uint16
        assert arr.max() < 4096
        syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
        for key in (
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "FrameOfReferenceUID",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "Manufacturer",
            "MagneticFieldStrength",
            "PatientID",
            "PatientName",
            "AccessionNumber",
            "SeriesDescription",
            "InstanceNumber",
            "WindowCenter",
            "PatientAge",
            "StudyDate",
        ):
            assert key in ds, (p, key)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        assert np.isclose(np.linalg.norm(iop[:3]), 1, atol=1e-4) and np.isclose(iop[:3] @ iop[3:], 0, atol=1e-4)
    assert {
        "RLE Lossless",
        "JPEG 2000 Image Compression (Lossless Only)",
        "Explicit VR Little Endian",
        "Implicit VR Little Endian",
    } <= syntaxes


def test_uids_unique_and_series_consistent(archive) -> None:
    root, _ = archive
    files = _good_mr_files(root)
    sops = [ds.SOPInstanceUID for _, ds in files]
    assert len(sops) == len(set(sops))
    series = defaultdict(list)
    for _, ds in files:
        series[ds.SeriesInstanceUID].append(ds)
    for dss in series.values():
        assert len({d.StudyInstanceUID for d in dss}) == 1
        assert len({d.SeriesDescription for d in dss}) == 1
        assert len({int(d.InstanceNumber) for d in dss}) == len(dss)
        if "CardiacNumberOfImages" in dss[0] and int(dss[0].CardiacNumberOfImages) > 1 and "TriggerTime" in dss[0]:
            n = int(dss[0].CardiacNumberOfImages)
            positions = {tuple(np.round(np.array(d.ImagePositionPatient, float), 2)) for d in dss}
            # full cines, less at most one frame whose file is a planted fault (excluded above)
            assert n * len(positions) - len(dss) in (0, 1)


def test_sax_slices_ordered_along_normal_and_lv_center_in_fov(archive) -> None:
    root, _ = archive
    truth = {r["study_uid"]: r for r in read_csv(root / "ground_truth.csv")}
    by_series = defaultdict(list)
    for _, ds in _good_mr_files(root):
        by_series[(ds.StudyInstanceUID, ds.SeriesInstanceUID)].append(ds)
    checked = 0
    for (study, _), dss in by_series.items():
        if "CardiacNumberOfImages" not in dss[0]:
            continue
        positions = sorted({tuple(np.array(d.ImagePositionPatient, float)) for d in dss})
        if len(positions) < 4:
            continue
        iop = np.array(dss[0].ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        proj = np.array(positions) @ normal
        d = np.diff(np.sort(proj))
        spacing = float(dss[0].SpacingBetweenSlices)
        assert np.allclose(d, spacing, atol=0.05)
        # the LV centre projects into the image
        c = np.array([float(truth[study][f"lv_center_{k}"]) for k in "xyz"])
        ipp = np.array(positions[len(positions) // 2])
        rel = c - ipp
        col = rel @ iop[:3] / float(dss[0].PixelSpacing[1])
        row = rel @ iop[3:] / float(dss[0].PixelSpacing[0])
        assert 0 <= col < dss[0].Columns and 0 <= row < dss[0].Rows
        checked += 1
    assert checked >= 3


def test_long_axis_cines_pass_through_lv_center(archive) -> None:
    """Each 2ch/3ch/4ch view in ground truth has a single-plane cine whose plane holds the LV centre."""
    root, _ = archive
    truth = read_csv(root / "ground_truth.csv")
    planes = defaultdict(list)
    for _, ds in _good_mr_files(root):
        if "CardiacNumberOfImages" in ds and int(ds.CardiacNumberOfImages) > 1 and ds.ImageType[2] == "M":
            planes[ds.StudyInstanceUID].append(ds)
    for row in truth:
        c = np.array([float(row[f"lv_center_{k}"]) for k in "xyz"])
        through = set()
        for ds in planes[row["study_uid"]]:
            iop = np.array(ds.ImageOrientationPatient, float)
            n = np.cross(iop[:3], iop[3:])
            if abs((c - np.array(ds.ImagePositionPatient, float)) @ n) < 0.5:
                through.add(ds.SeriesInstanceUID)
        n_lax = sum(v in row["views"].split(";") for v in ("2ch", "3ch", "4ch"))
        assert len(through) >= n_lax, row["study_uid"]
