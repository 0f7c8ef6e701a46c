"""List → stage → scan → reports → preprocess: the ingest of any source that is staged as local files.

Used by the DICOMweb ingest (``indexer.pacs_ingest``) and the de-identified folder ingest
(``indexer.deid_ingest``). The scan and the preprocessing are the folder ingest's own; the source only decides
what arrives in the staging folder, and de-identification happens before anything is written there.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from catalog import queries
from catalog.db import get_engine
from catalog.identity import record_links
from catalog.models import IngestWatermark
from indexer.deid import Deidentifier
from indexer.deid_text import deidentify_report
from indexer.ingest import preprocess_pending
from indexer.reports import import_reports, read_report_export
from indexer.scan import ScanResult, scan_folder
from indexer.sources import StudyListing, StudySource
from indexer.staging import StageOutcome, Stager, StagingArea

log = logging.getLogger(__name__)

FETCH = "fetch"  # ingest error stage of everything that happens before the scan


@dataclass
class StagedIngestSummary:
    listed: int = 0
    current: int = 0  # already staged with the same version: not fetched again
    staged: int = 0
    filtered: int = 0
    failed: int = 0
    instances: int = 0
    bytes: int = 0
    listing_error: str | None = None
    watermark: str | None = None
    reports_imported: int = 0
    reports_rejected: int = 0
    reports_dropped: int = 0  # de-identifying: reports with no study to take identifiers from
    scan: ScanResult | None = None
    preprocessed: int = 0
    preprocess_failed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class StagedIngest:
    """One source, its staging area and how studies are staged; ``run`` ingests what is new or changed."""

    db_url: str
    source: StudySource
    area: StagingArea
    cache_dir: Path
    deid: Deidentifier | None = None
    watermark_key: str | None = None  # incremental by StudyDate when set
    concurrency: int = 4
    retries: int = 3
    backoff_s: float = 1.0
    workers: int = 1
    salt: str = "cmr-default-salt"

    def __post_init__(self) -> None:
        self.factory = sessionmaker(bind=get_engine(self.db_url), expire_on_commit=False)

    def name_of(self, study_uid: str) -> str:
        return self.deid.uid(study_uid) if self.deid else study_uid

    def run(
        self,
        *,
        since: dt.date | None = None,
        reports: Path | None = None,
        progress: bool = True,
        on_staged: Callable[[StageOutcome], None] | None = None,
    ) -> StagedIngestSummary:
        summary = StagedIngestSummary()
        self.area.prepare()
        t0 = time.perf_counter()
        since = since or self._watermark()
        try:
            listings = self.source.list_studies(since)
        except Exception as exc:  # an unreachable PACS is an ingest error, not a crash
            failure = self.source.classify(exc)
            summary.listing_error = failure.reason
            log.warning("cannot list the studies of the %s source: %s", self.source.kind, failure.reason)
            with self.factory.begin() as session:
                queries.record_error(
                    session, stage=FETCH, kind=failure.kind, reason=f"listing studies: {failure.reason}",
                    path=self.source.ref,
                )  # fmt: skip
            return summary
        summary.listed = len(listings)
        todo = [s for s in listings if not self.area.is_current(self.name_of(s.study_uid), self._version(s))]
        summary.current = len(listings) - len(todo)
        stager = Stager(
            self.source, self.area, self.name_of, self.deid.apply if self.deid else None,
            version_suffix=self._version_suffix, concurrency=self.concurrency,
            retries=self.retries, backoff_s=self.backoff_s,
        )  # fmt: skip
        outcomes = stager.stage(todo, progress=progress, on_staged=on_staged)
        summary.seconds["fetch"] = time.perf_counter() - t0
        self._record(listings, todo, outcomes, summary)

        t0 = time.perf_counter()
        pending = self.area.pending_scan()
        if reports is not None:
            export = self._deidentified_reports(reports, listings, summary) if self.deid else reports
            with self.factory.begin() as session:
                summary.reports_imported, summary.reports_rejected = import_reports(session, export)
        if pending:
            summary.scan = scan_folder(
                self.factory, self.area.studies, workers=self.workers, progress=progress, salt=self.salt,
                source=self.source.kind, source_ref=self.source.ref,
            )  # fmt: skip
            self.area.mark_scanned(pending)
        elif reports is not None:
            with self.factory.begin() as session:
                queries.link_reports(session)
        summary.seconds["scan"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary.preprocessed, summary.preprocess_failed = preprocess_pending(
            self.db_url, self.cache_dir, workers=self.workers, progress=progress
        )
        summary.seconds["preprocess"] = time.perf_counter() - t0
        return summary

    @property
    def _version_suffix(self) -> str:
        """What the staging does to a study, as part of its version: a new secret or date mode → staged anew."""
        return f"|deid:{self.deid.fingerprint}" if self.deid else ""

    def _version(self, study: StudyListing) -> str:
        return study.version + self._version_suffix

    def _record(
        self,
        listings: list[StudyListing],
        todo: list[StudyListing],
        outcomes: list[StageOutcome],
        summary: StagedIngestSummary,
    ) -> None:
        """Errors of failed studies, cleared ones of the rest; links if kept; the watermark, never past a failure."""
        failed_dates = []
        with self.factory.begin() as session:
            queries.clear_errors(session, stage=FETCH, path_prefix=self.source.ref)  # the listing worked
            done = {s.study_uid for s in listings} - {s.study_uid for s in todo}
            for uid in done:
                queries.clear_errors(session, stage=FETCH, study_uid=self.name_of(uid))
            for o in outcomes:
                summary.instances += o.instances
                summary.bytes += o.bytes
                if o.status == "failed":
                    summary.failed += 1
                    failed_dates.append(o.study.study_date or dt.date.min)
                    queries.clear_errors(session, stage=FETCH, study_uid=o.name)
                    queries.record_error(
                        session, stage=FETCH, kind=o.failure.kind, study_uid=o.name,
                        reason=f"{o.failure.reason} (after {o.attempts} attempt(s))",
                    )  # fmt: skip
                    continue
                queries.clear_errors(session, stage=FETCH, study_uid=o.name)
                setattr(summary, o.status, getattr(summary, o.status) + 1)
                if self.deid is not None and self.deid.config.keep_mapping:
                    record_links(session, self._links(o.study))
            if self.watermark_key:
                summary.watermark = self._advance(session, listings, failed_dates)

    def _links(self, study: StudyListing) -> list[tuple[str, str, str]]:
        p, ident = self.deid.pseudonyms, study.identity
        links = [("study", self.name_of(study.study_uid), study.study_uid)]
        if ident.get("patient_id"):
            name = ident.get("patient_name") or ""
            links.append(("patient", p.value("PatientID", ident["patient_id"]), f"{ident['patient_id']} {name}"))
        if ident.get("accession"):
            links.append(("accession", p.value("AccessionNumber", ident["accession"]), ident["accession"]))
        return links

    def _watermark(self) -> dt.date | None:
        if not self.watermark_key:
            return None
        with self.factory() as session:
            row = session.get(IngestWatermark, self.watermark_key)
            return dt.date.fromisoformat(row.value) if row else None

    def _advance(self, session, listings: list[StudyListing], failed_dates: list[dt.date]) -> str | None:
        """The next run lists from the earliest failed study on, or from the newest study date seen."""
        row = session.get(IngestWatermark, self.watermark_key)
        dates = [s.study_date for s in listings if s.study_date]
        if failed_dates:
            value = min(failed_dates)
            if value == dt.date.min:
                return row.value if row else None  # a failed study without a date: keep listing everything
        elif dates:
            value = max(dates + ([dt.date.fromisoformat(row.value)] if row else []))
        else:
            return row.value if row else None
        if row is None:
            session.add(IngestWatermark(source_ref=self.watermark_key, value=value.isoformat()))
        else:
            row.value = value.isoformat()
        return value.isoformat()

    def _deidentified_reports(
        self, export: Path, listings: list[StudyListing], summary: StagedIngestSummary
    ) -> Path:
        """A de-identified copy of the RIS export: text scrubbed with each study's own identifiers, accession
        and date replaced. Reports of accessions no listed study has are dropped: without the study's
        identifiers their names could not be found reliably."""
        by_accession = {s.identity["accession"]: s.identity for s in listings if s.identity.get("accession")}
        out = self.area.root / "reports.csv"
        tmp = out.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["accession", "report_date", "report_text"])
            for row in read_report_export(export):
                identity = None if isinstance(row, str) else by_accession.get(row.accession)
                if identity is None:
                    summary.reports_dropped += 1
                    continue
                known = self.deid.known(identity)
                rule = self.deid.date_rule(identity.get("patient_id") or "")
                day = rule(row.report_date) if row.report_date else None
                writer.writerow(
                    [known["ids"][row.accession], day.isoformat() if day else "", deidentify_report(row.text, known)]
                )
        tmp.replace(out)
        if summary.reports_dropped:
            log.info("%d report(s) without a study in this run were left out", summary.reports_dropped)
        return out

