"""A PACS over DICOMweb: QIDO-RS lists studies and series, WADO-RS fetches instances (``dicomweb-client``).

Retrying is done per study by the stager, so the client's own retry is switched off; every request has a timeout.
One client per thread: ``requests.Session`` is not documented as thread-safe.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from indexer.deid.dicom import identity_of
from indexer.dicom.headers import parse_date
from indexer.sources.dicomweb_config import PacsConfig
from indexer.sources.folder import Failure, FilteredOut, StudyListing

STUDY_FIELDS = [
    "StudyInstanceUID", "StudyDate", "StudyDescription", "AccessionNumber", "PatientID", "PatientName",
    "PatientBirthDate", "ReferringPhysicianName", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]  # fmt: skip
SERIES_FIELDS = ["SeriesInstanceUID", "SeriesDescription", "Modality", "NumberOfSeriesRelatedInstances"]
# Whatever transfer syntax the PACS stores: no transcoding on the server, the scan reads them all.
ANY_SYNTAX = (("application/dicom", "*"),)
QIDO_PAGE = 500
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def make_session(cfg: PacsConfig) -> requests.Session:
    """An HTTP session with the configured authentication (none, basic user/password, bearer token)."""
    session = requests.Session()
    if cfg.auth == "basic":
        session.auth = (cfg.user, cfg.password)
    elif cfg.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {cfg.token}"
    return session


def _dataset(item: dict) -> Dataset:
    return Dataset.from_json(item)


def server_key(url: str) -> str:
    """A folder name for a server: readable host and port, and a hash of the whole URL."""
    parts = urlsplit(url)
    host = re.sub(r"[^0-9A-Za-z.-]", "_", f"{parts.hostname or 'pacs'}-{parts.port or ''}".strip("-"))
    return f"{host}-{hashlib.sha1(url.rstrip('/').encode()).hexdigest()[:8]}"


class DicomWebSource:
    """A PACS: always staged (``data_dir/pacs/<server-key>[-deid]``), listed incrementally by StudyDate."""

    kind = "dicomweb"
    local_root = None
    incremental = True

    def __init__(self, url: str, cfg: PacsConfig):
        self.ref = url.rstrip("/")
        self.cfg = cfg
        self.concurrency, self.retries, self.backoff_s = cfg.concurrency, cfg.retries, cfg.backoff_s
        self.problems: list = []  # instances arrive whole or the study fails: never a file problem
        self._pattern = re.compile(cfg.description_pattern)
        self._local = threading.local()

    def staging_name(self, deidentified: bool) -> str:
        return f"pacs/{server_key(self.ref)}" + ("-deid" if deidentified else "")

    @property
    def client(self) -> DICOMwebClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = DICOMwebClient(self.ref, session=make_session(self.cfg), timeout=self.cfg.timeout_s)
            client.set_http_retry_params(retry=False)
            self._local.client = client
        return client

    def list_studies(self, since: dt.date | None = None) -> list[StudyListing]:
        """Studies with the configured modality, from ``since`` on (StudyDate, inclusive)."""
        filters: dict[str, Any] = {"ModalitiesInStudy": self.cfg.modality}
        if since is not None:
            filters["StudyDate"] = f"{since:%Y%m%d}-"
        listings: dict[str, StudyListing] = {}
        for ds in self._search_studies(filters):
            uid = str(ds.get("StudyInstanceUID", "") or "")
            if not uid:
                continue
            counts = f"{ds.get('NumberOfStudyRelatedSeries', '')}/{ds.get('NumberOfStudyRelatedInstances', '')}"
            listings[uid] = StudyListing(
                study_uid=uid,
                study_date=parse_date(ds.get("StudyDate")),
                version=counts,
                identity=identity_of(ds),
                description=str(ds.get("StudyDescription", "") or ""),
            )
        return sorted(listings.values(), key=lambda s: (s.study_date or dt.date.min, s.study_uid))

    def _search_studies(self, filters: dict[str, Any]) -> Iterator[Dataset]:
        """QIDO-RS pages of QIDO_PAGE studies. Paging is ours: dicomweb-client's ``get_remaining`` sends an offset
        without a limit, which Orthanc ignores, so it would ask for the same page forever."""
        offset, seen = 0, set()
        while True:
            page = self.client.search_for_studies(
                search_filters=filters, fields=STUDY_FIELDS, limit=QIDO_PAGE, offset=offset
            )
            uids = {str(item.get("0020000D", {}).get("Value", [""])[0]) for item in page}
            if not page or uids <= seen:  # the end, or a server that ignores the offset
                return
            seen |= uids
            yield from map(_dataset, page)
            if len(page) < QIDO_PAGE:
                return
            offset += len(page)

    def series_to_fetch(self, study: StudyListing) -> list[str]:
        """UIDs of the study's series of the configured modality; raises FilteredOut for a non-cardiac study."""
        found = map(_dataset, self.client.search_for_series(study.study_uid, fields=SERIES_FIELDS))
        series = [s for s in found if str(s.get("Modality", "")) == self.cfg.modality]
        descriptions = [study.description] + [str(s.get("SeriesDescription", "") or "") for s in series]
        if not any(self._pattern.search(d) for d in descriptions if d):
            raise FilteredOut("no study or series description matches the cardiac pattern")
        return sorted(str(s.SeriesInstanceUID) for s in series)

    def iter_instances(self, study: StudyListing) -> Iterator[Dataset]:
        for series_uid in self.series_to_fetch(study):
            yield from self.client.iter_series(study.study_uid, series_uid, media_types=ANY_SYNTAX)

    def classify(self, exc: BaseException) -> Failure:
        """Which ingest error a failure is, and whether another attempt may succeed. No URLs in the reason."""
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            reason = f"HTTP {status} {exc.response.reason or ''}".strip()
            if status in (401, 403):
                return Failure("pacs_unauthorized", f"{reason}: check pacs_auth / user / password / token", False)
            return Failure("fetch_failed", reason, status in TRANSIENT_STATUS)
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            what = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
            return Failure("pacs_unreachable", f"{what} ({type(exc).__name__})", True)
        if isinstance(exc, requests.RequestException):
            return Failure("fetch_failed", f"transfer broke off ({type(exc).__name__})", True)
        return Failure("fetch_failed", f"{type(exc).__name__}: {exc}"[:300], False)
