"""Read-only catalog queries behind the UI's study page, filter choices and status page.

They return frozen dataclasses, never ORM rows, so a page can use them after the session is closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from catalog.models import IndexBuild, IngestError, Report, Study, StudyState


@dataclass(frozen=True)
class SeriesInfo:
    view: str
    description: str | None
    n_slices: int
    n_phases: int


@dataclass(frozen=True)
class StudyDetail:
    """Everything the study page and the exports show about one study (identifiers included: see ui.privacy)."""

    study_id: int
    study_uid: str
    accession: str | None
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: dt.date | None
    patient_key: str
    patient_age: int | None
    patient_sex: str | None
    study_date: dt.date | None
    study_description: str | None
    institution: str | None
    manufacturer: str | None
    scanner_model: str | None
    field_strength: float | None
    views: list[str]
    state: str
    clip_path: str | None
    report_text: str | None
    impression: str | None
    findings: str | None
    series: list[SeriesInfo] = field(default_factory=list)


@dataclass(frozen=True)
class FilterOptions:
    """The values the search filters can take in this catalog."""

    institutions: list[str]
    manufacturers: list[str]
    field_strengths: list[float]
    age_range: tuple[int, int]
    date_range: tuple[dt.date, dt.date] | None


@dataclass(frozen=True)
class ErrorRow:
    stage: str
    kind: str
    reason: str
    path: str | None
    study_uid: str | None


@dataclass(frozen=True)
class IndexBuildInfo:
    kind: str
    checkpoint_hash: str
    index_key: str
    n_vectors: int
    created_at: dt.datetime


def _detail(study: Study, report: Report | None) -> StudyDetail:
    return StudyDetail(
        study_id=study.id,
        study_uid=study.study_uid,
        accession=study.accession,
        patient_id=study.patient_id,
        patient_name=study.patient_name,
        patient_birth_date=study.patient_birth_date,
        patient_key=study.patient_key,
        patient_age=study.patient_age,
        patient_sex=study.patient_sex,
        study_date=study.study_date,
        study_description=study.study_description,
        institution=study.institution,
        manufacturer=study.manufacturer,
        scanner_model=study.scanner_model,
        field_strength=study.field_strength,
        views=list(study.views or []),
        state=study.state,
        clip_path=study.clip_path,
        report_text=report.text if report else None,
        impression=report.impression if report else None,
        findings=report.findings if report else None,
        series=[SeriesInfo(s.view, s.description, s.n_slices, s.n_phases) for s in study.series],
    )


def study_details(session: Session, study_ids: Sequence[int]) -> list[StudyDetail]:
    """Details of the given studies in the order given; withdrawn and unknown ids are left out."""
    if not study_ids:
        return []
    stmt = (
        select(Study)
        .where(Study.id.in_(list(study_ids)), Study.state != StudyState.WITHDRAWN)
        .options(selectinload(Study.series), selectinload(Study.report))
    )
    by_id = {s.id: _detail(s, s.report) for s in session.scalars(stmt)}
    return [by_id[i] for i in study_ids if i in by_id]


def study_detail(session: Session, study_id: int) -> StudyDetail | None:
    found = study_details(session, [study_id])
    return found[0] if found else None


def filter_options(session: Session) -> FilterOptions:
    """Distinct institutions, manufacturers and field strengths, and the age and date ranges, of live studies."""
    live = Study.state != StudyState.WITHDRAWN

    def distinct(column) -> list:
        return sorted(v for v in session.scalars(select(column).where(live, column.is_not(None)).distinct()))

    age_lo, age_hi, d_lo, d_hi = session.execute(
        select(
            func.min(Study.patient_age),
            func.max(Study.patient_age),
            func.min(Study.study_date),
            func.max(Study.study_date),
        ).where(live)
    ).one()
    return FilterOptions(
        institutions=distinct(Study.institution),
        manufacturers=distinct(Study.manufacturer),
        field_strengths=[float(v) for v in distinct(Study.field_strength)],
        age_range=(int(age_lo or 0), int(age_hi or 100)),
        date_range=(d_lo, d_hi) if d_lo and d_hi else None,
    )


def errors_by_kind(session: Session) -> dict[str, list[ErrorRow]]:
    """Ingest errors grouped by kind, kinds in name order."""
    out: dict[str, list[ErrorRow]] = {}
    stmt = select(IngestError).order_by(IngestError.kind, IngestError.stage, IngestError.path)
    for e in session.scalars(stmt):
        out.setdefault(e.kind, []).append(ErrorRow(e.stage, e.kind, e.reason, e.path, e.study_uid))
    return out


def active_index_builds(session: Session) -> list[IndexBuildInfo]:
    """The index files search serves (one per kind), for the status page when the engine cannot open."""
    stmt = select(IndexBuild).where(IndexBuild.active.is_(True)).order_by(IndexBuild.kind)
    return [
        IndexBuildInfo(b.kind, b.checkpoint_hash, b.index_key, b.n_vectors, b.created_at) for b in session.scalars(stmt)
    ]
