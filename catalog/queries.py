"""The catalog queries the other rooms need. Plain functions over a Session; no business logic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from catalog.models import IngestError, Report, Series, Study, StudyState


def study_by_uid(session: Session, study_uid: str) -> Study | None:
    return session.scalar(select(Study).where(Study.study_uid == study_uid))


def record_error(
    session: Session, *, stage: str, kind: str, reason: str, path: str | None = None, study_uid: str | None = None
) -> None:
    """Record an ingest error once (re-running the same ingest does not duplicate it)."""
    exists = session.scalar(
        select(IngestError.id).where(
            IngestError.stage == stage,
            IngestError.kind == kind,
            IngestError.path.is_(None) if path is None else IngestError.path == path,
            IngestError.study_uid.is_(None) if study_uid is None else IngestError.study_uid == study_uid,
        )
    )
    if exists is None:
        session.add(IngestError(stage=stage, kind=kind, reason=reason, path=path, study_uid=study_uid))


def clear_errors(session: Session, *, stage: str, path_prefix: str | None = None, study_uid: str | None = None) -> None:
    """Forget errors of one stage under a path prefix or for one study, before they are re-checked."""
    stmt = delete(IngestError).where(IngestError.stage == stage)
    if path_prefix is not None:
        stmt = stmt.where(IngestError.path.startswith(path_prefix, autoescape=True))
    if study_uid is not None:
        stmt = stmt.where(IngestError.study_uid == study_uid)
    session.execute(stmt)


def list_errors(session: Session) -> Sequence[IngestError]:
    return session.scalars(select(IngestError).order_by(IngestError.stage, IngestError.kind, IngestError.path)).all()


def error_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(IngestError.kind, func.count()).group_by(IngestError.kind)).all()
    return {kind: n for kind, n in rows}


def list_studies(session: Session, *, with_series: bool = False) -> Sequence[Study]:
    stmt = select(Study).order_by(Study.id)
    if with_series:
        stmt = stmt.options(selectinload(Study.series))
    return session.scalars(stmt).all()


def studies_to_preprocess(session: Session, version: str) -> list[int]:
    """Ids of studies whose clip is missing or made by another preprocessing version."""
    stmt = select(Study.id).where(
        Study.state != StudyState.WITHDRAWN,
        (Study.state == StudyState.SCANNED) | (Study.preprocess_version != version) | Study.clip_path.is_(None),
    )
    return list(session.scalars(stmt.order_by(Study.id)))


def series_of(session: Session, study_id: int) -> Sequence[Series]:
    return session.scalars(select(Series).where(Series.study_id == study_id).order_by(Series.series_number)).all()


def state_counts(session: Session) -> dict[str, int]:
    return {s: n for s, n in session.execute(select(Study.state, func.count()).group_by(Study.state)).all()}


def view_counts(session: Session) -> dict[str, int]:
    return {v: n for v, n in session.execute(select(Series.view, func.count()).group_by(Series.view)).all()}


def upsert_report(
    session: Session, *, accession: str, text: str, impression: str | None, findings: str | None, report_date=None
) -> Report:
    report = session.scalar(select(Report).where(Report.accession == accession))
    if report is None:
        report = Report(accession=accession, text=text)
        session.add(report)
    report.text, report.impression, report.findings, report.report_date = text, impression, findings, report_date
    study = session.scalar(select(Study).where(Study.accession == accession))
    report.study_id = study.id if study else None
    return report


def link_reports(session: Session, study_ids: Iterable[int] | None = None) -> int:
    """Attach reports to studies by accession number; returns how many links were made."""
    stmt = select(Report, Study).join(Study, Study.accession == Report.accession).where(Report.study_id.is_(None))
    if study_ids is not None:
        stmt = stmt.where(Study.id.in_(list(study_ids)))
    n = 0
    for report, study in session.execute(stmt).all():
        report.study_id = study.id
        n += 1
    return n


def study_records(session: Session) -> list[dict]:
    """Per usable study: id, uid, clip path, impression, patient key, site, findings — the model's input."""
    stmt = (
        select(Study.id, Study.study_uid, Study.clip_path, Report.impression, Study.patient_key, Study.institution,
               Report.findings)
        .outerjoin(Report, Report.study_id == Study.id)
        .where(Study.state == StudyState.PREPROCESSED, Study.clip_path.is_not(None))
        .order_by(Study.id)
    )
    return [
        {
            "study_id": r[0],
            "study_uid": r[1],
            "clip_path": r[2],
            "caption": r[3],
            "patient_key": r[4],
            "site": r[5] or "",
            "findings": r[6],
        }
        for r in session.execute(stmt).all()
    ]
