"""The preprocessing stage of ingest: clips for every study whose clip is missing or from another version.

Each study is committed as its clip is made, so a run killed midway resumes with the studies not yet done.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import sessionmaker
from tqdm import tqdm

from catalog.errors import clear_errors, record_error
from catalog.models import Study, StudyState
from catalog.studies import studies_to_preprocess
from cmrclip.clips import clip_path, save_clip, save_crop
from indexer.clips.preprocess import PREPROCESS_VERSION, ClipResult, SeriesInput, make_clips
from indexer.pool import process_pool

STAGE = "preprocess"


def _job(study_id: int, study_uid: str, series: list[SeriesInput], out: str) -> tuple[int, ClipResult | str]:
    try:
        result = make_clips(series)
        if result.views:
            save_clip(Path(out), result.views)
            if result.center is not None:
                save_crop(Path(out), result.center)
        return study_id, result
    except Exception as exc:  # recorded against the study; the batch goes on
        return study_id, f"{type(exc).__name__}: {exc}"


def _jobs(db: sessionmaker, cache_dir: Path, limit: int | None) -> list[tuple[int, str, list[SeriesInput], str]]:
    with db() as session:
        jobs = []
        for sid in studies_to_preprocess(session, PREPROCESS_VERSION)[:limit]:
            study = session.get(Study, sid)
            series = [
                SeriesInput(s.view, s.series_number or 0, s.rows or 0, s.columns or 0, s.pixel_spacing_mm, s.frames)
                for s in study.series
            ]
            jobs.append((sid, study.study_uid, series, str(clip_path(cache_dir, study.study_uid, PREPROCESS_VERSION))))
    return jobs


def _record(db: sessionmaker, study_id: int, study_uid: str, out: str, result: ClipResult | str) -> bool:
    """Write one study's outcome in its own transaction; True when it has a clip now."""
    with db.begin() as session:
        study = session.get(Study, study_id)
        clear_errors(session, stage=STAGE, study_uid=study_uid)
        if isinstance(result, str) or not result.views:
            reason = result if isinstance(result, str) else result.failure_reason()
            record_error(session, stage=STAGE, kind="study_failed", reason=reason, study_uid=study_uid)
            study.state = StudyState.FAILED
            return False
        for p in result.problems:
            record_error(session, stage=STAGE, kind=p.kind, reason=p.reason, path=p.path, study_uid=study_uid)
        if study.state != StudyState.WITHDRAWN:
            study.state = StudyState.PREPROCESSED
        study.clip_path = out
        study.preprocess_version = PREPROCESS_VERSION
        return True


def preprocess_pending(
    db: sessionmaker, cache_dir: Path, *, workers: int = 1, progress: bool = True, limit: int | None = None
) -> tuple[int, int]:
    """Make clips for every study whose clip is missing or from another version; returns (done, failed)."""
    jobs = _jobs(db, Path(cache_dir), limit)
    by_id = {j[0]: j for j in jobs}
    done = failed = 0
    pool = process_pool(workers) if workers > 1 and jobs else None
    try:
        results = pool.map(_job, *zip(*jobs, strict=True)) if pool else (_job(*j) for j in jobs)
        for sid, result in tqdm(results, total=len(jobs), desc="preprocess", unit="study", disable=not progress):
            _, uid, _, out = by_id[sid]
            if _record(db, sid, uid, out, result):
                done += 1
            else:
                failed += 1
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return done, failed
