"""Ingest: scan an archive, import reports, preprocess every study that needs it. Resumable and idempotent."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import sessionmaker
from tqdm import tqdm

from catalog import queries
from catalog.db import get_engine
from catalog.models import Study, StudyState
from cmrclip.clips import clip_path, save_clip
from indexer.preprocess import PREPROCESS_VERSION, ClipResult, SeriesInput, make_clips
from indexer.reports import import_reports
from indexer.scan import ScanResult, scan_folder

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    scan: ScanResult | None = None
    reports_imported: int = 0
    reports_rejected: int = 0
    preprocessed: int = 0
    preprocess_failed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _job(study_id: int, study_uid: str, series: list[SeriesInput], out: str) -> tuple[int, ClipResult | str]:
    try:
        result = make_clips(series)
        if result.views:
            save_clip(Path(out), result.views)
        return study_id, result
    except Exception as exc:  # recorded against the study; the batch goes on
        return study_id, f"{type(exc).__name__}: {exc}"


def preprocess_pending(
    url: str, cache_dir: Path, *, workers: int = 1, progress: bool = True, limit: int | None = None
) -> tuple[int, int]:
    """Make clips for every study whose clip is missing or from another version; returns (done, failed)."""
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    with factory() as session:
        ids = queries.studies_to_preprocess(session, PREPROCESS_VERSION)[:limit]
        jobs = []
        for sid in ids:
            study = session.get(Study, sid)
            series = [
                SeriesInput(s.view, s.series_number or 0, s.rows or 0, s.columns or 0, s.pixel_spacing_mm, s.frames)
                for s in study.series
            ]
            out = clip_path(cache_dir, study.study_uid, PREPROCESS_VERSION)
            jobs.append((sid, study.study_uid, series, str(out)))
    done = failed = 0
    bar = tqdm(total=len(jobs), desc="preprocess", unit="study", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        results = pool.map(_job, *zip(*jobs, strict=True)) if (pool and jobs) else (_job(*j) for j in jobs)
        outs = {j[0]: j[3] for j in jobs}
        uids = {j[0]: j[1] for j in jobs}
        with factory() as session:
            for n, (sid, result) in enumerate(results, 1):
                study = session.get(Study, sid)
                queries.clear_errors(session, stage="preprocess", study_uid=uids[sid])
                if isinstance(result, str) or not result.views:
                    reason = result if isinstance(result, str) else "no usable view in the study"
                    queries.record_error(
                        session, stage="preprocess", kind="study_failed", reason=reason, study_uid=uids[sid]
                    )
                    study.state = StudyState.FAILED
                    failed += 1
                else:
                    for p in result.problems:
                        queries.record_error(
                            session, stage="preprocess", kind=p.kind, reason=p.reason, path=p.path, study_uid=uids[sid]
                        )
                    if study.state != StudyState.WITHDRAWN:
                        study.state = StudyState.PREPROCESSED
                    study.clip_path = outs[sid]
                    study.preprocess_version = PREPROCESS_VERSION
                    done += 1
                bar.update()
                if n % 10 == 0:
                    session.commit()
            session.commit()
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    return done, failed


def ingest_folder(
    url: str,
    root: Path,
    cache_dir: Path,
    *,
    reports: Path | None = None,
    workers: int = 1,
    progress: bool = True,
    salt: str = "cmr-default-salt",
) -> IngestSummary:
    summary = IngestSummary()
    factory = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    t0 = time.perf_counter()
    if reports is not None:
        with factory() as session:
            summary.reports_imported, summary.reports_rejected = import_reports(session, reports)
            session.commit()
    summary.seconds["reports"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary.scan = scan_folder(factory, root, workers=workers, progress=progress, salt=salt)
    summary.seconds["scan"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary.preprocessed, summary.preprocess_failed = preprocess_pending(
        url, cache_dir, workers=workers, progress=progress
    )
    summary.seconds["preprocess"] = time.perf_counter() - t0
    return summary
