"""Where studies come from: one interface, a folder of DICOM files or a PACS over DICOMweb.

A source lists its studies (with a ``version`` that changes when a study changes) and yields a study's
instances as pydicom datasets; staging (``indexer.sources.staging``) writes them to a local folder that the existing
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

from indexer.deid.dicom import OTHER_NAME_KEYWORDS, identity_of
from indexer.dicom.files import NotRegularFile, iter_files, open_regular
from indexer.dicom.headers import parse_date

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


@dataclass(frozen=True)
class FileProblem:
    """A file of a source that is not part of any staged study, and why (recorded as an ingest error)."""

    path: str
    kind: str  # not_dicom | not_a_file | unreadable | stage_skipped
    reason: str  # without the path or any identifier


class StudySource(Protocol):
    kind: str  # "folder" | "dicomweb": the catalog's Study.source
    ref: str  # archive root or server URL: the catalog's Study.source_ref
    local_root: Path | None  # a folder the scan may read in place (then nothing is staged unless de-identifying)
    incremental: bool  # lists by StudyDate from a stored watermark
    concurrency: int  # studies staged at once
    retries: int  # further attempts per study, for transient faults
    backoff_s: float  # first wait between attempts; doubles each time
    problems: list[FileProblem]  # files seen by the last listing / staging that are in no study

    def staging_name(self, deidentified: bool) -> str: ...

    def list_studies(self, since: dt.date | None) -> list[StudyListing]: ...

    def iter_instances(self, study: StudyListing) -> Iterator[Dataset | FileProblem]: ...

    def classify(self, exc: BaseException) -> Failure: ...


class FolderSource:
    """An archive folder. Listing reads a few header tags of every file; a study's version is its files' stat.

    Only regular files are read (:func:`indexer.dicom.files.open_regular`); every other file, and every file
    that is not DICOM, is a :class:`FileProblem` of the listing.
    """

    kind = "folder"
    incremental = False
    retries = 1
    backoff_s = 0.1

    def __init__(self, root: Path, *, strict: bool = False, concurrency: int = 1):
        self.root = Path(root).resolve()
        self.ref = str(self.root)
        self.local_root = self.root
        self.strict = strict
        self.concurrency = max(concurrency, 1)
        self.problems: list[FileProblem] = []

    def staging_name(self, deidentified: bool) -> str:
        key = hashlib.sha1(self.ref.encode()).hexdigest()[:12]
        return f"deid/{key}" if deidentified else f"folder/{key}"

    def _header(self, path: Path) -> Dataset | None:
        try:
            with open_regular(path) as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=not self.strict, specific_tags=IDENTITY_TAGS)
            str(ds.StudyInstanceUID)
            return ds
        except NotRegularFile as exc:
            self.problems.append(FileProblem(str(path), "not_a_file", f"not read: {exc}"))
        except OSError as exc:
            self.problems.append(FileProblem(str(path), "unreadable", f"cannot be read ({type(exc).__name__})"))
        except (InvalidDicomError, AttributeError, ValueError, EOFError, KeyError, TypeError) as exc:
            reason = f"not a readable DICOM file ({type(exc).__name__})"
            self.problems.append(FileProblem(str(path), "not_dicom", reason))
        return None

    def list_studies(self, since: dt.date | None = None) -> list[StudyListing]:
        files: dict[str, list[Path]] = defaultdict(list)
        first: dict[str, Dataset] = {}
        skipped: list[tuple[Path, str]] = []
        self.problems = []
        for path in iter_files(self.root, skipped):
            ds = self._header(path)
            if ds is None:
                continue
            uid = str(ds.StudyInstanceUID)
            files[uid].append(path)
            first.setdefault(uid, ds)
        self.problems += [FileProblem(str(p), "not_a_file", f"not read: {why}") for p, why in skipped]
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

    def iter_instances(self, study: StudyListing) -> Iterator[Dataset | FileProblem]:
        """The study's instances; a file that cannot be read whole is a FileProblem in their place."""
        for path in study.locator:
            try:
                with open_regular(path) as fh:
                    ds = pydicom.dcmread(fh, force=not self.strict)
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
                log.warning("skipped an unreadable file of a study (%s)", type(exc).__name__)
                yield FileProblem(str(path), "unreadable", f"the file could not be read whole ({type(exc).__name__})")
                continue
            ds.filename = str(path)
            yield ds

    def classify(self, exc: BaseException) -> Failure:
        # The message would name the file, and archive paths carry patient ids: the type says enough.
        return Failure("stage_failed", f"a file of the study could not be read ({type(exc).__name__})",
                       transient=isinstance(exc, OSError))
