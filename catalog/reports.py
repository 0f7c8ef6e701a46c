"""Reports: stored from the RIS export and linked to their studies by accession number. Plain functions."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Report, Study


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
