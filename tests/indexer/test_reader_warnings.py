"""The DICOM reader's warnings reach the log under a file reference, never with the file's path: archive folders
are patient IDs and accession numbers (issue 12, item 3)."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from indexer.dicom import headers, pixels
from indexer.dicom.files import file_ref

PATIENT, ACCESSION = "53754598", "RB03714582"


@pytest.fixture
def archive_file(tmp_path) -> Path:
    path = tmp_path / "site_b" / PATIENT / ACCESSION / "401_SA_CINE" / "IM_00015"
    path.parent.mkdir(parents=True)
    shutil.copy(get_testdata_file("MR_small.dcm"), path)
    return path


@pytest.fixture
def noisy_reader(monkeypatch):
    """pydicom as it behaves on a damaged file: a warning that names the file it reads."""
    real = pydicom.dcmread

    def dcmread(source, *args, **kwargs):
        name = getattr(source, "name", source)
        warnings.warn(f"Invalid value for VR AS in {name}", UserWarning, stacklevel=2)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(headers.pydicom, "dcmread", dcmread)
    monkeypatch.setattr(pixels.pydicom, "dcmread", dcmread)


def _read(path: Path) -> None:
    (header,) = headers.read_headers(path)
    pixels._frame(str(path), 0, {})
    assert header.rows == 64


def test_warnings_are_logged_by_reference_without_the_path(archive_file, noisy_reader, caplog, capsys, monkeypatch):
    monkeypatch.delenv("CMR_LOG_PATHS", raising=False)
    from catalog.settings import get_settings

    get_settings.cache_clear()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        _read(archive_file)
    assert not escaped  # nothing goes to the console through the warnings machinery
    logged = caplog.text + "".join(capsys.readouterr())
    assert f"DICOM reader, {file_ref(archive_file)}: Invalid value for VR AS" in logged
    assert PATIENT not in logged and ACCESSION not in logged and "IM_00015" not in logged


def test_paths_only_when_asked(archive_file, noisy_reader, caplog, monkeypatch):
    monkeypatch.setenv("CMR_LOG_PATHS", "true")
    from catalog.settings import get_settings

    get_settings.cache_clear()
    try:
        caplog.set_level(logging.WARNING)
        _read(archive_file)
        assert str(archive_file) in caplog.text
    finally:
        monkeypatch.delenv("CMR_LOG_PATHS")
        get_settings.cache_clear()
