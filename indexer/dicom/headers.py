"""Fast header-only reading of DICOM files into plain records.

Only the tags the scan needs are parsed (``specific_tags``), pixel data is never read here.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from indexer.dicom.files import open_regular, reader_warnings

# Real archives are full of slightly invalid values (over-long UIDs, odd dates): read them, don't warn per file.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

# SOP classes that hold images we can use (MR, enhanced MR); anything else is recorded and skipped.
MR_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
}

SCAN_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "SeriesDescription", "SeriesNumber", "InstanceNumber", "TriggerTime", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns", "NumberOfFrames",
    "PatientID", "PatientName", "PatientBirthDate", "PatientAge", "PatientSex", "PatientWeight",
    "PatientSize", "StudyDate", "StudyDescription", "AccessionNumber", "InstitutionName", "Manufacturer",
    "ManufacturerModelName", "MagneticFieldStrength", "InversionTime", "AcquisitionTime",
    "CardiacNumberOfImages",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "SliceLocation",
]  # fmt: skip


class NotAnImage(ValueError):
    """A readable DICOM file that holds no usable MR image (report, presentation state, other modality)."""

    def __init__(self, reason: str, study_uid: str | None = None):
        super().__init__(reason)
        self.study_uid = study_uid


@dataclass
class FrameHeader:
    """One image frame (a single-frame file, or one frame of a multi-frame file)."""

    path: str
    frame: int
    sop_uid: str
    study_uid: str
    series_uid: str
    modality: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    trigger_time: float | None
    position: np.ndarray | None  # ImagePositionPatient, mm
    orientation: np.ndarray | None  # 6 direction cosines
    pixel_spacing: float | None
    slice_thickness: float | None
    rows: int
    columns: int
    inversion_time: float | None
    transfer_syntax: str
    study: dict = field(default_factory=dict)  # study/patient-level attributes

    @property
    def normal(self) -> np.ndarray | None:
        if self.orientation is None:
            return None
        n = np.cross(self.orientation[:3], self.orientation[3:])
        norm = np.linalg.norm(n)
        return n / norm if norm > 0 else None


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def parse_date(value) -> dt.date | None:
    """DICOM DA → date; real archives write '20120000' or '00000000', which become None (or Jan 1st)."""
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    if year < 1900:
        return None
    try:
        return dt.date(year, max(month, 1), max(day, 1))
    except ValueError:
        return None


def parse_age(value) -> int | None:
    """DICOM AS ('054Y', '006M') → whole years."""
    text = str(value or "").strip().upper()
    if len(text) < 2 or not text[:-1].isdigit():
        return None
    n, unit = int(text[:-1]), text[-1]
    return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}.get(unit)


def _vector(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _study_attrs(ds: dict) -> dict:
    birth = parse_date(ds.get("PatientBirthDate"))
    study_date = parse_date(ds.get("StudyDate"))
    age = parse_age(ds.get("PatientAge"))
    if age is None and birth and study_date:
        age = (study_date - birth).days // 365
    height = _float(ds.get("PatientSize"))
    return {
        "patient_id": str(ds.get("PatientID", "") or "") or None,
        "patient_name": str(ds.get("PatientName", "") or "") or None,
        "patient_birth_date": birth,
        "patient_age": age,
        "patient_sex": (str(ds.get("PatientSex", "") or "")[:1].upper() or None),
        "patient_weight_kg": _float(ds.get("PatientWeight")) or None,
        "patient_height_m": height or None,
        "study_date": study_date,
        "study_description": str(ds.get("StudyDescription", "") or "") or None,
        "accession": str(ds.get("AccessionNumber", "") or "") or None,
        "institution": str(ds.get("InstitutionName", "") or "") or None,
        "manufacturer": str(ds.get("Manufacturer", "") or "") or None,
        "scanner_model": str(ds.get("ManufacturerModelName", "") or "") or None,
        "field_strength": _float(ds.get("MagneticFieldStrength")),
    }


_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UC", "UT"}
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


def raw_values(ds) -> dict[str, object]:
    """Keyword → value of the top-level elements, decoded straight from the raw bytes.

    Converting through pydicom's Dataset machinery costs several times the file read itself; the scan needs
    only strings and a few integers, so they are decoded here (multi-valued strings become lists). Sequences
    and anything unusual go through pydicom.
    """
    out: dict[str, object] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating the Dataset itself would convert every element
        keyword = pydicom.datadict.keyword_for_tag(tag)
        if not keyword:
            continue
        raw = ds.get_item(tag)
        value = getattr(raw, "value", None)
        vr = getattr(raw, "VR", None) or (pydicom.datadict.dictionary_VR(tag) if keyword else None)
        if not isinstance(value, bytes | bytearray):
            out[keyword] = ds[tag].value
        elif vr in _STRING_VRS:
            text = value.decode("latin-1").strip("\x00 ")
            parts = [p.strip() for p in text.split("\\")]
            out[keyword] = parts if len(parts) > 1 else text
        elif vr in _BINARY_VRS and len(value) >= struct.calcsize(_BINARY_VRS[vr]):
            fmt = ("<" if getattr(raw, "is_little_endian", True) else ">") + _BINARY_VRS[vr]
            out[keyword] = struct.unpack_from(fmt, value)[0]
        else:
            out[keyword] = ds[tag].value
    return out


def _per_frame_geometry(ds, index: int) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    """Position, orientation and trigger time of one frame of an enhanced multi-frame image."""
    pos = ori = trig = None
    groups = []
    if "PerFrameFunctionalGroupsSequence" in ds and index < len(ds.PerFrameFunctionalGroupsSequence):
        groups.append(ds.PerFrameFunctionalGroupsSequence[index])
    if "SharedFunctionalGroupsSequence" in ds:
        groups.extend(ds.SharedFunctionalGroupsSequence)
    for g in groups:
        if pos is None and "PlanePositionSequence" in g:
            pos = _vector(g.PlanePositionSequence[0].get("ImagePositionPatient"), 3)
        if ori is None and "PlaneOrientationSequence" in g:
            ori = _vector(g.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
        if trig is None and "CardiacSynchronizationSequence" in g:
            trig = _float(g.CardiacSynchronizationSequence[0].get("NominalCardiacTriggerDelayTime"))
    return pos, ori, trig


def _pixel_spacing(ds, values: dict) -> float | None:
    spacing = _vector(values.get("PixelSpacing"), 2)
    if spacing is None and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared:
            spacing = _vector(shared.PixelMeasuresSequence[0].get("PixelSpacing"), 2)
    return float(spacing.mean()) if spacing is not None and spacing.min() > 0 else None


def read_headers(path: Path, *, strict: bool = False) -> list[FrameHeader]:
    """Read the frames of one DICOM file, header only.

    ``strict`` (the ``dicom_read`` setting) rejects files without a preamble and file meta.

    Raises
    ------
    NotRegularFile
        A FIFO, device, socket or symlink loop: never opened for reading, so it cannot hang the scan.
    OSError
        The file vanished or cannot be opened.
    InvalidDicomError
        The file is not DICOM (or is truncated inside its header).
    NotAnImage
        The file is DICOM but holds no usable MR image.
    """
    with reader_warnings(path):
        return _read_headers(path, strict=strict)


def _read_headers(path: Path, *, strict: bool = False) -> list[FrameHeader]:
    with open_regular(path) as fh:
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=not strict, specific_tags=SCAN_TAGS)
        except InvalidDicomError:
            raise
        except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidDicomError(f"unreadable DICOM header: {exc}") from exc
    ds_values = raw_values(ds)
    if "SOPInstanceUID" not in ds_values or "StudyInstanceUID" not in ds_values:
        raise InvalidDicomError("not a DICOM file (no SOP Instance / Study Instance UID)")
    modality = str(ds_values.get("Modality", "") or "")
    sop_class = str(ds_values.get("SOPClassUID", "") or "")
    study_uid = str(ds_values["StudyInstanceUID"])
    if modality != "MR":
        raise NotAnImage(f"modality {modality or 'missing'} is not MR", study_uid)
    if sop_class and sop_class not in MR_IMAGE_CLASSES:
        name = pydicom.uid.UID(sop_class).name
        raise NotAnImage(f"SOP class {name} holds no MR image", study_uid)
    rows, cols = _int(ds_values.get("Rows")), _int(ds_values.get("Columns"))
    if not rows or not cols:
        raise NotAnImage("no image matrix (Rows/Columns missing)", study_uid)
    meta = getattr(ds, "file_meta", None)
    tsyntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    common = {
        "path": str(path),
        "sop_uid": str(ds_values["SOPInstanceUID"]),
        "study_uid": str(ds_values["StudyInstanceUID"]),
        "series_uid": str(ds_values.get("SeriesInstanceUID", "") or str(ds_values["StudyInstanceUID"]) + ".0"),
        "modality": modality,
        "series_description": str(ds_values.get("SeriesDescription", "") or ""),
        "series_number": _int(ds_values.get("SeriesNumber")),
        "instance_number": _int(ds_values.get("InstanceNumber")),
        "pixel_spacing": _pixel_spacing(ds, ds_values),
        "slice_thickness": _float(ds_values.get("SliceThickness")),
        "rows": rows,
        "columns": cols,
        "inversion_time": _float(ds_values.get("InversionTime")),
        "transfer_syntax": tsyntax,
        "study": _study_attrs(ds_values),
    }
    n_frames = _int(ds_values.get("NumberOfFrames")) or 1
    frames = []
    for i in range(n_frames):
        # Top-level tags first (some exporters leave stray functional groups in single-frame files),
        # then the frame's functional groups (enhanced multi-frame).
        use_groups = n_frames > 1 or "ImagePositionPatient" not in ds_values
        pos, ori, trig = _per_frame_geometry(ds, i) if use_groups else (None, None, None)
        top_pos = _vector(ds_values.get("ImagePositionPatient"), 3)
        top_ori = _vector(ds_values.get("ImageOrientationPatient"), 6)
        top_trig = _float(ds_values.get("TriggerTime"))
        if n_frames == 1:
            pos, ori, trig = (
                (top_pos if top_pos is not None else pos),
                (top_ori if top_ori is not None else ori),
                (top_trig if top_trig is not None else trig),
            )
        else:
            pos = pos if pos is not None else top_pos
            ori = ori if ori is not None else top_ori
        frames.append(
            FrameHeader(
                frame=i,
                trigger_time=trig,
                position=pos,
                orientation=ori,
                **{**common, "instance_number": common["instance_number"] if n_frames == 1 else i + 1},
            )
        )
    return frames
