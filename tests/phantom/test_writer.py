from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest

from phantom.dicom_writer import (
    Instance,
    SeriesEncoder,
    SeriesHeader,
    StudyHeader,
    UidSource,
    encode_pixels,
    instance_dataset,
    series_base,
    write_dataset,
)
from phantom.patients import make_patient
from phantom.planes import Plane
from phantom.rle import encode_frames


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "rle", "j2k"])
def test_fast_encoder_matches_pydicom(tmp_path: Path, syntax: str) -> None:
    """SeriesEncoder's hand-assembled files read back exactly like pydicom's own dcmwrite output."""
    rng = np.random.default_rng(0)
    uids = UidSource(rng)
    p = make_patient(rng, (30, 60), dt.date(2020, 1, 1))
    study = StudyHeader(
        p,
        uids(),
        uids(),
        "A1234567",
        "7",
        dt.date(2020, 1, 1),
        dt.time(10, 5, 3),
        "CARDIAC MRI",
        "Inst",
        "ST1",
        "SIEMENS",
        "Aera",
        "syngo MR E11",
        "12345",
        1.5,
        "DR^WHO",
        64,
    )
    series = SeriesHeader(
        uids(),
        4,
        "cine_sax",
        "cine_sax",
        "cine",
        "*tfi2d1_25",
        syntax,
        dt.time(10, 7),
        2.8,
        1.4,
        60,
        n_phases=25,
        spacing_between_slices=10.0,
    )
    plane = Plane(
        np.array([10.0, -20.0, 5.0]), np.array([0.6, 0.8, 0.0]), np.array([0.0, 0.0, -1.0]), 60, 70, 1.55, 8.0
    )
    frames = rng.integers(0, 4000, (2, 60, 70)).astype(np.uint16)
    values = encode_pixels(frames, syntax)
    base = series_base(study, series)
    inst = Instance(uids(), 3, plane, 123.456, 2)
    fast = tmp_path / "fast.dcm"
    fast.write_bytes(SeriesEncoder(base, series).encode(inst, frames[0], values[0], dt.time(10, 7, 1)))
    slow = tmp_path / "slow.dcm"
    write_dataset(slow, instance_dataset(base, series, inst, frames[0], values[0], dt.time(10, 7, 1)))
    a, b = pydicom.dcmread(fast), pydicom.dcmread(slow)
    assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
    assert [e.tag for e in a] == [e.tag for e in b]
    for ea, eb in zip(a, b, strict=True):
        if ea.keyword != "PixelData":
            assert ea.value == eb.value, ea.keyword
    assert np.array_equal(a.pixel_array, frames[0]) and np.array_equal(b.pixel_array, frames[0])


def test_rle_roundtrip_edge_cases() -> None:
    from pydicom.pixels.decoders.rle import _rle_decode_frame

    rng = np.random.default_rng(1)
    cases = [
        np.zeros((3, 300), np.uint16),
        rng.integers(0, 4096, (5, 129)).astype(np.uint16),
        np.repeat(rng.integers(0, 3, (4, 40)), 7, axis=1).astype(np.uint16),
        np.full((1, 1), 7, np.uint16),
    ]
    for a in cases:
        enc = encode_frames(a[None])[0]
        dec = np.frombuffer(bytes(_rle_decode_frame(enc, a.shape[1], a.shape[0], 1, 16)), "<u2")
        assert np.array_equal(dec.reshape(a.shape), a)
