"""MR Image Storage files as scanners write them: one file per frame, headers only scanners would know."""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openjpeg
from pydicom import dcmwrite
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from phantom.patients import Patient
from phantom.planes import Plane
from phantom.rle import encode_frames

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
UID_ROOT = "1.2.826.0.1.3680043.8.498."
TRANSFER_SYNTAX = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "j2k": JPEG2000Lossless,
}


class UidSource:
    """Valid, unique-in-practice UIDs drawn from a seeded generator (same seed, same UIDs)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self) -> str:
        a = int(self.rng.integers(10**17, 10**18))
        b = int(self.rng.integers(10**11, 10**12))
        return f"{UID_ROOT}{a}.{b}"


@dataclass
class StudyHeader:
    patient: Patient
    study_uid: str
    frame_of_reference_uid: str
    accession: str
    study_id: str
    date: dt.date
    time: dt.time
    description: str
    institution: str
    station: str
    manufacturer: str
    model: str
    software: str
    serial: str
    field_strength: float
    referring: str
    heart_rate: int


@dataclass
class SeriesHeader:
    uid: str
    number: int
    description: str
    protocol: str
    kind: str  # cine, lge, t1map, localizer
    sequence_name: str
    transfer_syntax: str  # key of TRANSFER_SYNTAX
    time: dt.time
    tr: float
    te: float
    flip: float
    ti: float | None = None
    n_phases: int = 1
    spacing_between_slices: float | None = None
    drop_trigger_time: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Instance:
    sop_uid: str
    number: int
    plane: Plane
    trigger_ms: float | None
    acquisition: int


SEQUENCE = {
    # kind: (ScanningSequence, SequenceVariant, ScanOptions, ImageType)
    "cine": ("GR", ["SS", "SK"], "CG", ["ORIGINAL", "PRIMARY", "M", "RETRO", "DIS2D"]),
    "lge": (["GR", "IR"], ["SK", "SP", "MP"], "IR", ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]),
    "t1map": (["GR", "IR"], ["SK", "SS"], "IR", ["DERIVED", "PRIMARY", "T1 MAP", "MOCO"]),
    "localizer": ("GR", ["SK", "SS"], "", ["ORIGINAL", "PRIMARY", "M", "NORM"]),
}


def _age(p: Patient, day: dt.date) -> str:
    return f"{p.age_at(day):03d}Y"


def series_base(study: StudyHeader, series: SeriesHeader) -> Dataset:
    """Study- and series-level elements, shared by every instance of a series (never mutated)."""
    p = study.patient
    scan, variant, options, image_type = SEQUENCE[series.kind]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = image_type
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.StudyDate = study.date.strftime("%Y%m%d")
    ds.SeriesDate = ds.StudyDate
    ds.AcquisitionDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.StudyTime = study.time.strftime("%H%M%S.%f")[:13]
    ds.SeriesTime = series.time.strftime("%H%M%S.%f")[:13]
    ds.AccessionNumber = study.accession
    ds.Modality = "MR"
    ds.Manufacturer = study.manufacturer
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring
    ds.StationName = study.station
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = study.model
    ds.PatientName = p.dicom_name
    ds.PatientID = p.patient_id
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.PatientAge = _age(p, study.date)
    ds.PatientSize = f"{p.height_cm / 100:.2f}"
    ds.PatientWeight = f"{p.weight_kg:.1f}"
    ds.BodyPartExamined = "HEART"
    ds.ScanningSequence = scan
    ds.SequenceVariant = variant
    if options:
        ds.ScanOptions = options
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = series.sequence_name
    ds.RepetitionTime = f"{series.tr:.2f}"
    ds.EchoTime = f"{series.te:.2f}"
    if series.ti is not None:
        ds.InversionTime = f"{series.ti:.0f}"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = f"{42.577478 * study.field_strength:.6f}"
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = f"{study.field_strength:.1f}"
    if series.spacing_between_slices is not None:
        ds.SpacingBetweenSlices = f"{series.spacing_between_slices:.2f}"
    ds.DeviceSerialNumber = study.serial
    ds.SoftwareVersions = study.software
    ds.ProtocolName = series.protocol
    if series.kind in ("cine", "lge", "t1map"):
        rr = 60000.0 / study.heart_rate
        ds.HeartRate = str(study.heart_rate)
        ds.NominalInterval = f"{rr:.0f}"
        ds.CardiacNumberOfImages = str(series.n_phases)
    ds.FlipAngle = f"{series.flip:.0f}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = str(series.number)
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for key, value in series.extra.items():
        setattr(ds, key, value)
    return ds


def _ds(v: float) -> str:
    """A DS value that fits in 16 characters."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if len(s) <= 16 else f"{v:.8g}"


def encode_pixels(frames: np.ndarray, syntax: str) -> list[bytes]:
    """Pixel Data values for each frame ``(F, H, W)`` uint16 in a transfer syntax."""
    if syntax == "rle":
        return [encapsulate([f]) for f in encode_frames(frames)]
    if syntax == "j2k":
        return [
            encapsulate(
                [openjpeg.encode(np.ascontiguousarray(f), bits_stored=12, photometric_interpretation=2, use_mct=False)]
            )
            for f in frames
        ]
    return [np.ascontiguousarray(f, dtype="<u2").tobytes() for f in frames]


def instance_dataset(
    base: Dataset, series: SeriesHeader, inst: Instance, pixels: np.ndarray, pixel_value: bytes, content_time: dt.time
) -> Dataset:
    ds = Dataset()
    ds.update(base)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = inst.sop_uid
    ds.file_meta.TransferSyntaxUID = TRANSFER_SYNTAX[series.transfer_syntax]
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "CMR_PHANTOM_1"
    pl = inst.plane
    ds.SOPInstanceUID = inst.sop_uid
    ds.AcquisitionTime = content_time.strftime("%H%M%S.%f")[:13]
    ds.ContentTime = ds.AcquisitionTime
    ds.SliceThickness = _ds(pl.thickness)
    if inst.trigger_ms is not None and not series.drop_trigger_time:
        ds.TriggerTime = _ds(round(inst.trigger_ms, 2))
    ds.AcquisitionNumber = str(inst.acquisition)
    ds.InstanceNumber = str(inst.number)
    ds.ImagePositionPatient = [_ds(v) for v in pl.position]
    ds.ImageOrientationPatient = [_ds(v) for v in pl.orientation]
    ds.SliceLocation = _ds(pl.slice_location)
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PixelSpacing = [_ds(pl.spacing), _ds(pl.spacing)]
    lo, hi = np.percentile(pixels[::4, ::4], [1, 99.5])
    ds.WindowCenter = str(int((lo + hi) / 2))
    ds.WindowWidth = str(max(int(hi - lo), 1))
    encapsulated = series.transfer_syntax in ("rle", "j2k")
    ds[0x7FE00010] = DataElement(
        0x7FE00010, "OB" if encapsulated else "OW", pixel_value, is_undefined_length=encapsulated
    )
    return ds


# ------------------------------------------------------------------------------ fast path
# pydicom's dcmwrite costs ~4 ms per file, more than rendering the frame. A series shares almost all
# elements, so SeriesEncoder encodes those once with pydicom and hand-encodes the few instance-level
# elements (simple string VRs and the pixel data) per file. Tests read every file back with pydicom.
_LONG_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UC", "UR", "UT", "UN"}
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _element(tag: int, vr: str, value: bytes, implicit: bool, undefined: bool = False) -> bytes:
    if len(value) % 2 and not undefined:
        value += b"\0" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    length = 0xFFFFFFFF if undefined else len(value)
    if implicit:
        return head + struct.pack("<I", length) + value
    if vr in _LONG_VRS:
        return head + vr.encode() + b"\0\0" + struct.pack("<I", length) + value
    return head + vr.encode() + struct.pack("<H", length) + value


def _text(values: list[str] | str) -> bytes:
    return ("\\".join(values) if isinstance(values, list) else values).encode("ascii")


def file_meta_bytes(sop_class: str, sop_uid: str, syntax_uid: str) -> bytes:
    """Preamble, DICM prefix and File Meta Information (always explicit VR little endian)."""
    body = b"".join(
        [
            _element(0x00020001, "OB", b"\0\1", False),
            _element(0x00020002, "UI", sop_class.encode(), False),
            _element(0x00020003, "UI", sop_uid.encode(), False),
            _element(0x00020010, "UI", syntax_uid.encode(), False),
            _element(0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID.encode(), False),
            _element(0x00020013, "SH", b"CMR_PHANTOM_1", False),
        ]
    )
    group_len = _element(0x00020000, "UL", struct.pack("<I", len(body)), False)
    return b"\0" * 128 + b"DICM" + group_len + body


class SeriesEncoder:
    """Encodes the instances of one series to file bytes; the shared elements are encoded once."""

    def __init__(self, base: Dataset, series: SeriesHeader):
        self.series = series
        self.syntax = TRANSFER_SYNTAX[series.transfer_syntax]
        self.implicit = series.transfer_syntax == "implicit"
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, self.implicit
        self.base: list[tuple[int, bytes]] = []
        for elem in base:
            start = fp.tell()
            write_data_element(fp, elem)
            self.base.append((int(elem.tag), fp.getvalue()[start:]))

    def encode(self, inst: Instance, pixels: np.ndarray, pixel_value: bytes, content_time: dt.time) -> bytes:
        pl = inst.plane
        lo, hi = np.percentile(pixels[::4, ::4], [1, 99.5])
        tm = content_time.strftime("%H%M%S.%f")[:13].encode()
        items: list[tuple[int, str, bytes]] = [
            (0x00080018, "UI", inst.sop_uid.encode()),
            (0x00080032, "TM", tm),
            (0x00080033, "TM", tm),
            (0x00180050, "DS", _ds(pl.thickness).encode()),
            (0x00200012, "IS", str(inst.acquisition).encode()),
            (0x00200013, "IS", str(inst.number).encode()),
            (0x00200032, "DS", _text([_ds(v) for v in pl.position])),
            (0x00200037, "DS", _text([_ds(v) for v in pl.orientation])),
            (0x00201041, "DS", _ds(pl.slice_location).encode()),
            (0x00280010, "US", struct.pack("<H", pixels.shape[0])),
            (0x00280011, "US", struct.pack("<H", pixels.shape[1])),
            (0x00280030, "DS", _text([_ds(pl.spacing), _ds(pl.spacing)])),
            (0x00281050, "DS", str(int((lo + hi) / 2)).encode()),
            (0x00281051, "DS", str(max(int(hi - lo), 1)).encode()),
        ]
        if inst.trigger_ms is not None and not self.series.drop_trigger_time:
            items.append((0x00181060, "DS", _ds(round(inst.trigger_ms, 2)).encode()))
        encoded = [(tag, _element(tag, vr, value, self.implicit)) for tag, vr, value in items]
        if self.series.transfer_syntax in ("rle", "j2k"):
            pixel = _element(0x7FE00010, "OB", pixel_value, self.implicit, undefined=True) + _SEQ_DELIMITER
        else:
            pixel = _element(0x7FE00010, "OW", pixel_value, self.implicit)
        body = b"".join(b for _, b in sorted(self.base + encoded, key=lambda x: x[0]))
        return file_meta_bytes(MR_IMAGE_STORAGE, inst.sop_uid, self.syntax) + body + pixel


def write_dataset(path: Path, ds: Dataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
