"""Planted bad inputs, the way real archives contain them, each listed in faults.csv.

Kinds and what an ingest should do (``study_ok``: 1 = the study must still come out good with all the
views in ground truth, 0 = the whole study should be rejected or it is not a study at all):

* truncated (1): one SAX cine frame of the study cut short in place (sometimes inside the header,
  mostly inside the pixel data). Drop the file; the cine then lacks one frame.
* non_dicom (1): README.txt / .DS_Store / thumbnail.jpg inside the study folder. Skip it.
* no_pixel_data (1): a Basic Text SR in its own series of the study (same StudyInstanceUID). Skip it.
* odd_matrix (1): one frame of a cine series has other Rows/Columns (and PixelSpacing) than its siblings.
  Drop or resample it.
* duplicate_sop (1): an instance written a second time under another file name (same SOPInstanceUID).
  Keep one copy.
* non_mr (0): an extra CT study (Modality CT, CT Image Storage) in the archive; not in ground truth.
* missing_trigger_time (0): every cine of the study lacks TriggerTime; the study cannot be phase-ordered
  reliably and is expected to be rejected (InstanceNumber still follows the phase order).
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from phantom.dicom_writer import UidSource, write_dataset
from phantom.patients import make_patient
from phantom.study import StudyRecord

FAULT_KINDS = [
    "truncated",
    "non_dicom",
    "no_pixel_data",
    "odd_matrix",
    "duplicate_sop",
    "non_mr",
    "missing_trigger_time",
]
STUDY_OK = {
    "truncated": 1,
    "non_dicom": 1,
    "no_pixel_data": 1,
    "odd_matrix": 1,
    "duplicate_sop": 1,
    "non_mr": 0,
    "missing_trigger_time": 0,
}
# Faults decided before a study is rendered (they change how it is written).
RENDER_FAULTS = {"odd_matrix", "missing_trigger_time"}
MIN_STUDIES_FOR_ALL_KINDS = 40
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0KSEiMEExNDk7Pj4+"
    "JS5ESUM8SDc9Pjv/wAALCAAgACABAREA/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9"
    "AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZn"
    "aGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP0"
    "9fb3+Pn6/9oACAEBAAA/APL7W16cVtWtr04rZtbXpxW1a2vTiuMtbXpxWza2vTitq1tenFbNra9OK4y1tenFbVra9OK2bW16cVtWtr04"
    "rjLW16cVs2tr04ratbXpxW1a2vTiv//Z"
)


@dataclass(frozen=True)
class FaultRow:
    kind: str
    path: str  # relative to the archive root
    study_uid: str
    study_ok: int


def plan_faults(rng: np.random.Generator, n_studies: int, rate: float) -> dict[int, str]:
    """Which study index carries which fault (at most one per study).

    With ``rate > 0`` and at least MIN_STUDIES_FOR_ALL_KINDS studies, every kind occurs at least once.
    """
    if rate <= 0 or n_studies == 0:
        return {}
    n = int(rng.binomial(n_studies, min(rate, 1.0)))
    if n_studies >= MIN_STUDIES_FOR_ALL_KINDS:
        n = max(n, len(FAULT_KINDS))
    n = min(n, n_studies)
    chosen = rng.choice(n_studies, size=n, replace=False)
    if n >= len(FAULT_KINDS):
        kinds = list(FAULT_KINDS) + list(rng.choice(FAULT_KINDS, size=n - len(FAULT_KINDS)))
    else:
        kinds = list(rng.choice(FAULT_KINDS, size=n, replace=False))
    return {int(i): str(k) for i, k in zip(chosen, rng.permutation(kinds), strict=True)}


def apply_fault(
    kind: str, rec: StudyRecord, out_dir: Path, rng: np.random.Generator, uids: UidSource
) -> list[FaultRow]:
    """Plant a fault in or next to a written study; returns the rows for faults.csv."""
    uid = rec.header.study_uid
    ok = STUDY_OK[kind]
    if kind in RENDER_FAULTS:
        if kind == "odd_matrix":
            odd = _odd_matrix_file(rec, out_dir)
            return [FaultRow(kind, odd, uid, ok)]
        return [FaultRow(kind, rec.study_dir.as_posix(), uid, ok)]
    if kind == "truncated":
        cands = [f for f in rec.files if f.kind == "cine" and f.n_phases > 2] or rec.files
        f = cands[int(rng.integers(len(cands)))]
        path = out_dir / f.path
        data = path.read_bytes()
        cut = int(rng.integers(120, 600)) if rng.random() < 0.3 else int(len(data) * rng.uniform(0.35, 0.9))
        path.write_bytes(data[:cut])
        return [FaultRow(kind, f.path.as_posix(), uid, ok)]
    if kind == "duplicate_sop":
        f = rec.files[int(rng.integers(len(rec.files)))]
        src = out_dir / f.path
        dst = src.with_name(src.stem + "_1" + src.suffix if src.suffix else src.name + "_copy")
        shutil.copyfile(src, dst)
        return [FaultRow(kind, dst.relative_to(out_dir).as_posix(), uid, ok)]
    if kind == "non_dicom":
        choice = int(rng.integers(3))
        if choice == 0:
            rel = rec.study_dir / "README.txt"
            (out_dir / rel).write_text(f"Exported from PACS {rec.header.date.isoformat()}\nDo not edit.\n")
        elif choice == 1:
            series = rec.files[int(rng.integers(len(rec.files)))].path.parent
            rel = series / ".DS_Store"
            (out_dir / rel).write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)))
        else:
            rel = rec.study_dir / "thumbnail.jpg"
            (out_dir / rel).write_bytes(_JPEG)
        return [FaultRow(kind, rel.as_posix(), uid, ok)]
    if kind == "no_pixel_data":
        rel = rec.study_dir / "999_SR" / "SR00001.dcm"
        write_dataset(out_dir / rel, _text_sr(rec, uids))
        return [FaultRow(kind, rel.as_posix(), uid, ok)]
    if kind == "non_mr":
        rel_dir, ct_uid = _ct_study(rec, out_dir, rng, uids)
        return [FaultRow(kind, rel_dir.as_posix(), ct_uid, ok)]
    raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")


def _odd_matrix_file(rec: StudyRecord, out_dir: Path) -> str:
    """Find the frame whose matrix differs from its series (written by StudyWriter)."""
    from pydicom import dcmread

    by_series: dict[int, list] = {}
    for f in rec.files:
        if f.kind == "cine":
            by_series.setdefault(f.series_number, []).append(f)
    for files in by_series.values():
        sizes = {}
        for f in files:
            ds = dcmread(out_dir / f.path, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
            sizes.setdefault((ds.Rows, ds.Columns), []).append(f)
        if len(sizes) > 1:
            odd = min(sizes.values(), key=len)
            return odd[0].path.as_posix()
    return rec.study_dir.as_posix()


def _common(ds: Dataset, rec: StudyRecord) -> None:
    h = rec.header
    p = h.patient
    ds.StudyDate = h.date.strftime("%Y%m%d")
    ds.StudyTime = h.time.strftime("%H%M%S")
    ds.AccessionNumber = h.accession
    ds.ReferringPhysicianName = h.referring
    ds.PatientName = p.dicom_name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.StudyInstanceUID = h.study_uid
    ds.StudyID = h.study_id


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _text_sr(rec: StudyRecord, uids: UidSource) -> Dataset:
    """A Basic Text SR (no pixel data) in the study, as some scanners push with their measurements."""
    ds = Dataset()
    sop = uids()
    ds.file_meta = _file_meta(BASIC_TEXT_SR, sop)
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop
    ds.Modality = "SR"
    _common(ds, rec)
    ds.SeriesInstanceUID = uids()
    ds.SeriesNumber = "999"
    ds.SeriesDescription = "Evidence Documents"
    ds.InstanceNumber = "1"
    ds.Manufacturer = rec.header.manufacturer
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = [concept]
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.TextValue = f"LV function analysis exported {rec.header.date.isoformat()}"
    ds.ContentSequence = [item]
    return ds


def _ct_study(rec: StudyRecord, out_dir: Path, rng: np.random.Generator, uids: UidSource) -> tuple[Path, str]:
    """A small non-MR (CT chest) study of another patient, stored beside the MR studies."""
    patient = make_patient(rng, (40, 80), rec.header.date)
    study_uid, series_uid, for_uid = uids(), uids(), uids()
    acc = f"CT{int(rng.integers(10**6, 10**7)):07d}"
    rel_dir = Path("dicom", rec.request.site_name, patient.patient_id, acc)
    yy, xx = np.mgrid[-64:64, -64:64]
    body = ((xx / 55.0) ** 2 + (yy / 40.0) ** 2) < 1
    for k in range(6):
        ds = Dataset()
        sop = uids()
        ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.Modality = "CT"
        ds.StudyDate = (rec.header.date + dt.timedelta(days=1)).strftime("%Y%m%d")
        ds.StudyTime = "101500"
        ds.AccessionNumber = acc
        ds.PatientName = patient.dicom_name
        ds.PatientID = patient.patient_id
        ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
        ds.PatientSex = patient.sex
        ds.StudyDescription = "CT THORAX"
        ds.SeriesDescription = "THORAX 5mm"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesNumber = "2"
        ds.InstanceNumber = str(k + 1)
        ds.ImagePositionPatient = [-160.0, -160.0, float(-5 * k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [2.5, 2.5]
        ds.SliceThickness = "5"
        ds.KVP = "120"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = 128
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        img = np.where(body, 1064, 24) + rng.normal(0, 12, body.shape)
        ds.PixelData = np.clip(img, 0, 4095).astype("<u2").tobytes()
        write_dataset(out_dir / rel_dir / "2_THORAX" / f"CT{k + 1:04d}.dcm", ds)
    return rel_dir, study_uid
