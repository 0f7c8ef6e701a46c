"""Where studies come from: one interface, a folder of DICOM files or a PACS over DICOMweb.

A source lists its studies (with a ``version`` that changes when a study changes) and yields a study's
instances as pydicom datasets; staging (``indexer.staging``) writes them to a local folder that the existing
scan reads. Failures are classified by the source, which knows which of its errors are worth retrying.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from indexer.deid import OTHER_NAME_KEYWORDS, identity_of
from indexer.headers import parse_date
from indexer.scan import iter_files

log = logging.getLogger(__name__)

IDENTITY_TAGS = [
    "StudyInstanceUID", "StudyDate", "PatientID", "PatientName", "PatientBirthDate", "AccessionNumber",
    *OTHER_NAME_KEYWORDS,
]


@dataclass(frozen=True)
class StudyListing:
    """One study as its source lists it.

    ``identity`` holds the original identifiers (patient_id, patient_name, birth_date, accession, other_names):
    de-identification needs them to scrub the study's report. Never log it, never store it.
    """

    study_uid: str
    study_date: dt.date | None
    version: str  # a staged copy with the same version is current
    identity: dict[str, Any] = field(default_factory=dict, repr=False)
    description: str = ""  # StudyDescription
    locator: Any = field(default=None, repr=False)  # source-specific: the files of a folder study


@dataclass(frozen=True)
class Failure:
    kind: str  # recorded as the ingest error kind
    reason: str  # readable, without URLs or identifiers
    transient: bool  # worth another attempt


class FilteredOut(Exception):
    """The study is not one this site indexes (e.g. no cardiac description); not an error."""


class StudySource(Protocol):
    kind: str  # "folder" | "dicomweb": the catalog's Study.source
    ref: str  # archive root or server URL: the catalog's Study.source_ref

    def list_studies(self, since: dt.date | None) -> list[StudyListing]: ...

    def iter_instances(self, study: StudyListing) -> Iterator[Dataset]: ...

    def classify(self, exc: BaseException) -> Failure: ...


class FolderSource:
    """An archive folder. Listing reads a few header tags of every file; a study's version is its files' stat."""

    kind = "folder"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.ref = str(self.root)
        self.unreadable = 0  # files that are not DICOM (the scan of a plain folder ingest records them)

    def list_studies(self, since: dt.date | None = None) -> list[StudyListing]:
        files: dict[str, list[Path]] = defaultdict(list)
        first: dict[str, Dataset] = {}
        self.unreadable = 0
        for path in iter_files(self.root):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=IDENTITY_TAGS)
                uid = str(ds.StudyInstanceUID)
            except (InvalidDicomError, AttributeError, OSError, ValueError, EOFError, KeyError, TypeError):
                self.unreadable += 1
                continue
            files[uid].append(path)
            first.setdefault(uid, ds)
        listings = []
        for uid, paths in sorted(files.items()):
            day = parse_date(first[uid].get("StudyDate"))
            if since is not None and (day is None or day < since):
                continue
            listings.append(
                StudyListing(uid, day, self._version(paths), identity_of(first[uid]), locator=tuple(sorted(paths)))
            )
        return listings

    def _version(self, paths: list[Path]) -> str:
        h = hashlib.sha1()
        for p in sorted(paths):
            st = p.stat()
            h.update(f"{p.relative_to(self.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def iter_instances(self, study: StudyListing) -> Iterator[Dataset]:
        for path in study.locator:
            try:
                yield pydicom.dcmread(path, force=True)
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
                log.warning("skipped an unreadable file of a study (%s)", type(exc).__name__)

    def classify(self, exc: BaseException) -> Failure:
        # The message would name the file, and archive paths carry patient ids: the type says enough.
        return Failure("stage_failed", f"a file of the study could not be read ({type(exc).__name__})",
                       transient=isinstance(exc, OSError))
