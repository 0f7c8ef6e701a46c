"""The one ingest: list → stage (when needed) → reports → scan → preprocess, for every source.

``Ingest(settings, source, deid=None)`` runs a plain archive folder, a de-identified folder and a PACS over
DICOMweb alike. A folder read as it is needs no staging: the scan reads it in place. Anything else (a PACS, or a
folder de-identified on the way in) is first staged as files under ``data_dir/<source staging name>/``, one study
at a time and atomically (``indexer.sources.staging``), de-identified before anything is written; the scan then
reads the staging folder. Every stage takes the same database handle (a ``sessionmaker``) and commits per study,
so a run that is killed resumes with what was not done. Nothing in the input stops the batch: bad files, rows
and studies are recorded in ``ingest_errors`` with a reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from catalog.db import get_engine
from catalog.errors import clear_errors, record_error
from catalog.identity import record_links
from catalog.models import IngestWatermark
from catalog.reports import link_reports
from catalog.settings import Settings
from cmrclip.language.scrub import deidentify_report
from indexer.deid.dicom import DeidConfig, Deidentifier
from indexer.preprocess_stage import preprocess_pending
from indexer.reports import ReportRow, RowProblem, import_reports, read_report_export
from indexer.scan import ScanResult, scan_folder
from indexer.sources.dicomweb import DicomWebSource
from indexer.sources.dicomweb_config import PacsConfig
from indexer.sources.folder import FileProblem, FolderSource, StudyListing, StudySource
from indexer.sources.staging import StageOutcome, Stager, StagingArea

log = logging.getLogger(__name__)

FETCH = "fetch"  # ingest error stage of everything that happens before the scan


@dataclass
class IngestSummary:
    """What one run did. The fetch fields stay zero for a folder scanned in place."""

    source: str = "folder"
    staged_source: bool = False  # the studies went through a staging folder (fetch fields apply)
    listed: int = 0
    current: int = 0  # already staged with the same version: not fetched again
    staged: int = 0
    filtered: int = 0
    failed: int = 0
    instances: int = 0
    bytes: int = 0
    files_not_staged: int = 0  # files of a staged folder in no study (not DICOM, FIFO, ...): see the errors
    listing_error: str | None = None
    watermark: str | None = None
    reports_imported: int = 0
    reports_rejected: int = 0
    reports_conflicts: int = 0  # accessions given twice with different texts
    reports_dropped: int = 0  # de-identifying: reports with no study to take identifiers from
    scan: ScanResult | None = None
    preprocessed: int = 0
    preprocess_failed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class Ingest:
    """Ingest what is new or changed in one source into the catalog of ``settings`` (or ``db_url``)."""

    def __init__(
        self,
        settings: Settings,
        source: StudySource,
        deid: Deidentifier | None = None,
        *,
        db_url: str | None = None,
        workers: int | None = None,
        clip_dir: Path | None = None,
    ):
        self.settings, self.source, self.deid = settings, source, deid
        self.db = sessionmaker(bind=get_engine(db_url or settings.resolved_database_url()), expire_on_commit=False)
        self.workers = workers or settings.workers
        self.clip_dir = Path(clip_dir) if clip_dir is not None else settings.clip_dir
        staged = deid is not None or source.local_root is None
        name = source.staging_name(deid is not None)
        self.area = StagingArea(settings.data_dir / name) if staged else None
        self.watermark_key = f"{source.kind}:{Path(name).name}" if source.incremental else None

    # -- the sources ---------------------------------------------------------------------------------------------
    @classmethod
    def folder(cls, settings: Settings, root: Path, *, deidentify: bool = False, **kw) -> Ingest:
        """An archive folder, read in place, or staged as de-identified copies (``data_dir/deid/<key>/``).

        Raises ``ValueError`` when de-identifying without a secret."""
        source = FolderSource(root, strict=settings.dicom_strict, concurrency=kw.get("workers") or settings.workers)
        return cls(settings, source, deidentifier(settings) if deidentify else None, **kw)

    @classmethod
    def dicomweb(cls, settings: Settings, url: str, *, deidentify: bool = False, **kw) -> Ingest:
        """A PACS over DICOMweb (``pacs_*`` settings). Raises ``ValueError`` on inconsistent settings."""
        source = DicomWebSource(url, PacsConfig.from_settings(settings))
        return cls(settings, source, deidentifier(settings) if deidentify else None, **kw)

    # -- the run -------------------------------------------------------------------------------------------------
    def run(
        self,
        *,
        reports: Path | None = None,
        since: dt.date | None = None,
        progress: bool = True,
        on_staged: Callable[[StageOutcome], None] | None = None,
    ) -> IngestSummary:
        """Fetch (staged sources), import ``reports``, scan, preprocess. ``since`` (default: the stored watermark
        of an incremental source) limits the listing; ``on_staged`` is called, in this thread, as each study's
        staging ends."""
        summary = IngestSummary(source=self.source.kind, staged_source=self.area is not None)
        listings: list[StudyListing] = []
        if self.area is not None:
            t0 = time.perf_counter()
            listings = self._fetch(summary, since, progress, on_staged)
            summary.seconds["fetch"] = time.perf_counter() - t0
            if listings is None:
                return summary
        t0 = time.perf_counter()
        if reports is not None:
            self._reports(Path(reports), listings, summary)
        summary.seconds["reports"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._scan(summary, linking=reports is not None, progress=progress)
        summary.seconds["scan"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary.preprocessed, summary.preprocess_failed = preprocess_pending(
            self.db, self.clip_dir, workers=self.workers, progress=progress
        )
        summary.seconds["preprocess"] = time.perf_counter() - t0
        return summary

    def _scan(self, summary: IngestSummary, *, linking: bool, progress: bool) -> None:
        scan = dict(salt=self.settings.pseudonym_salt, strict=self.settings.dicom_strict, workers=self.workers,
                    progress=progress)  # fmt: skip
        if self.area is None:
            summary.scan = scan_folder(self.db, self.source.local_root, source=self.source.kind,
                                       source_ref=self.source.ref, **scan)
            return
        pending = self.area.pending_scan()
        if pending:
            summary.scan = scan_folder(
                self.db, self.area.studies, source=self.source.kind, source_ref=self.source.ref, **scan
            )
            self.area.mark_scanned(pending)
        elif linking:
            with self.db.begin() as session:
                link_reports(session)

    # -- reports -------------------------------------------------------------------------------------------------
    def _reports(self, path: Path, listings: list[StudyListing], summary: IngestSummary) -> None:
        rows: Iterable[ReportRow | RowProblem] = read_report_export(path)
        if self.deid is not None:
            rows = self._deidentified(rows, listings, summary)
        counts = import_reports(self.db, rows, ref=str(path.resolve()))
        summary.reports_imported, summary.reports_rejected = counts.imported, counts.rejected
        summary.reports_conflicts = counts.conflicts
        if summary.reports_dropped:
            log.info("%d report(s) without a study in this run were left out", summary.reports_dropped)

    def _deidentified(
        self, rows: Iterable[ReportRow | RowProblem], listings: list[StudyListing], summary: IngestSummary
    ) -> Iterator[ReportRow | RowProblem]:
        """The export's rows de-identified: text scrubbed with each study's own identifiers, accession and date
        replaced. Reports of accessions no listed study has are dropped: without the study's identifiers their
        names could not be found reliably."""
        by_accession = {s.identity["accession"]: s.identity for s in listings if s.identity.get("accession")}
        for row in rows:
            if isinstance(row, RowProblem):
                yield row
                continue
            identity = by_accession.get(row.accession)
            if identity is None:
                summary.reports_dropped += 1
                continue
            known = self.deid.known(identity)
            rule = self.deid.date_rule(identity.get("patient_id") or "")
            day = rule(row.report_date) if row.report_date else None
            yield ReportRow(known["ids"][row.accession], deidentify_report(row.text, known), day, row.where)

    # -- fetch (staged sources) ----------------------------------------------------------------------------------
    def name_of(self, study_uid: str) -> str:
        return self.deid.uid(study_uid) if self.deid else study_uid

    @property
    def _version_suffix(self) -> str:
        """What the staging does to a study, as part of its version: a new secret or date mode → staged anew."""
        return f"|deid:{self.deid.fingerprint}" if self.deid else ""

    def _file_ref(self, path: str) -> str | None:
        """How a file is named in the errors: its path, or when de-identifying a pseudonymous reference (archive
        paths carry patient ids and accession numbers)."""
        if not path:
            return None
        if self.deid is None:
            return path
        relative = str(Path(path).relative_to(self.source.ref)) if path.startswith(self.source.ref) else path
        return f"{self.source.ref}#file-{self.deid.pseudonyms.digest('path', relative).hex()[:16]}"

    def _fetch(
        self, summary: IngestSummary, since: dt.date | None, progress: bool, on_staged
    ) -> list[StudyListing] | None:
        """Stage what is new or changed; None when the source cannot be listed (recorded as an error)."""
        self.area.prepare()
        since = since or self._watermark()
        try:
            listings = self.source.list_studies(since)
        except Exception as exc:  # an unreachable PACS is an ingest error, not a crash
            failure = self.source.classify(exc)
            summary.listing_error = failure.reason
            log.warning("cannot list the studies of the %s source: %s", self.source.kind, failure.reason)
            with self.db.begin() as session:
                record_error(session, stage=FETCH, kind=failure.kind, reason=f"listing studies: {failure.reason}",
                             path=self.source.ref)  # fmt: skip
            return None
        summary.listed = len(listings)
        todo = [s for s in listings if not self.area.is_current(self.name_of(s.study_uid), self._version(s))]
        summary.current = len(listings) - len(todo)
        stager = Stager(
            self.source, self.area, self.name_of, self.deid.apply if self.deid else None,
            version_suffix=self._version_suffix, concurrency=self.source.concurrency,
            retries=self.source.retries, backoff_s=self.source.backoff_s, problem_ref=self._file_ref,
        )  # fmt: skip
        outcomes = stager.stage(todo, progress=progress, on_staged=on_staged)
        self._record(listings, todo, outcomes, summary)
        return listings

    def _version(self, study: StudyListing) -> str:
        return study.version + self._version_suffix

    def _record(
        self, listings: list[StudyListing], todo: list[StudyListing], outcomes: list[StageOutcome],
        summary: IngestSummary,
    ) -> None:  # fmt: skip
        """Errors of failed studies and unreadable files, cleared ones of the rest; links if kept; the watermark,
        never past a failure."""
        failed_dates = []
        with self.db.begin() as session:
            clear_errors(session, stage=FETCH, path_prefix=self.source.ref)  # the listing worked
            for problem in self.source.problems:  # files in no study: found again by every listing
                self._record_problem(session, problem, None)
            todo_uids = {s.study_uid for s in todo}
            for study in listings:
                if study.study_uid in todo_uids:
                    continue
                name = self.name_of(study.study_uid)
                clear_errors(session, stage=FETCH, study_uid=name)
                for ref, kind, reason in (self.area.manifest(name) or {}).get("problems", []):
                    record_error(session, stage=FETCH, kind=kind, reason=reason, path=ref, study_uid=name)
            for o in outcomes:
                summary.instances += o.instances
                summary.bytes += o.bytes
                clear_errors(session, stage=FETCH, study_uid=o.name)
                if o.status == "failed":
                    summary.failed += 1
                    failed_dates.append(o.study.study_date or dt.date.min)
                    record_error(session, stage=FETCH, kind=o.failure.kind, study_uid=o.name,
                                 reason=f"{o.failure.reason} (after {o.attempts} attempt(s))")  # fmt: skip
                    continue
                for problem in o.problems:
                    self._record_problem(session, problem, o.name)
                setattr(summary, o.status, getattr(summary, o.status) + 1)
                if self.deid is not None and self.deid.config.keep_mapping:
                    record_links(session, self._links(o.study))
            summary.files_not_staged = len(self.source.problems) + sum(len(o.problems) for o in outcomes)
            if self.watermark_key:
                summary.watermark = self._advance(session, listings, failed_dates)

    def _record_problem(self, session: Session, problem: FileProblem, study: str | None) -> None:
        path = problem.path if problem.path.startswith(f"{self.source.ref}#") else self._file_ref(problem.path)
        record_error(session, stage=FETCH, kind=problem.kind, reason=problem.reason, path=path, study_uid=study)

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
        with self.db() as session:
            row = session.get(IngestWatermark, self.watermark_key)
            return dt.date.fromisoformat(row.value) if row else None

    def _advance(self, session: Session, listings: list[StudyListing], failed_dates: list[dt.date]) -> str | None:
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


def deidentifier(settings: Settings) -> Deidentifier:
    """The settings' de-identification. Raises ``ValueError`` without a secret."""
    return Deidentifier(DeidConfig.from_settings(settings))


def ingest_folder(
    url: str,
    root: Path,
    clip_dir: Path,
    *,
    reports: Path | None = None,
    workers: int = 1,
    progress: bool = True,
    settings: Settings | None = None,
) -> IngestSummary:
    """Ingest an archive folder in place into the catalog at ``url``, clips to ``clip_dir`` (tests, benchmarks).

    ``settings`` defaults to the environment's, with ``data_dir`` the parent of ``clip_dir``."""
    settings = settings or Settings(data_dir=Path(clip_dir).parent)
    job = Ingest.folder(settings, root, db_url=url, workers=workers, clip_dir=clip_dir)
    return job.run(reports=reports, progress=progress)
