"""Studies: lookups, listings, counts, the row a search hit shows and the detail a study page shows.

Plain functions over a Session. Rows are frozen dataclasses, never ORM objects, so a caller can use them after
the session is closed. ``StudyRow`` is the one set of catalog fields a hit carries (``search.hits.Hit`` extends
it); ``StudyDetail`` extends it with what the study page and the exports add.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from catalog.chunks import in_chunks
from catalog.models import Report, Series, Study, StudyState


@dataclass(frozen=True)
class StudyRow:
    """The catalog fields of a study that a search hit shows (identifiers included: see ``search.privacy``)."""

    study_id: int
    study_uid: str
    accession: str | None
    study_date: dt.date | None
    patient_age: int | None
    patient_sex: str | None
    institution: str | None
    manufacturer: str | None
    scanner_model: str | None
    field_strength: float | None
    views: tuple[str, ...]
    impression: str | None
    has_report: bool
    patient_key: str
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: dt.date | None
    clip_path: str | None


@dataclass(frozen=True)
class SeriesInfo:
    view: str
    description: str | None
    n_slices: int
    n_phases: int


@dataclass(frozen=True)
class StudyDetail(StudyRow):
    """Everything the study page and the exports show about one study."""

    study_description: str | None
    state: str
    report_text: str | None
    findings: str | None
    series: list[SeriesInfo] = field(default_factory=list)
    # what the report states (``cmrclip.language.ReportFacts.to_json()``), None without a report or facts
    facts: dict | None = None


@dataclass(frozen=True)
class FilterOptions:
    """The values the search filters can take in this catalog."""

    institutions: list[str]
    manufacturers: list[str]
    field_strengths: list[float]
    age_range: tuple[int, int]
    date_range: tuple[dt.date, dt.date] | None


def _row_values(st: Study, report: Report | None) -> dict:
    return {
        "study_id": st.id,
        "study_uid": st.study_uid,
        "accession": st.accession,
        "study_date": st.study_date,
        "patient_age": st.patient_age,
        "patient_sex": st.patient_sex,
        "institution": st.institution,
        "manufacturer": st.manufacturer,
        "scanner_model": st.scanner_model,
        "field_strength": st.field_strength,
        "views": tuple(st.views or ()),
        "impression": report.impression if report else None,
        "has_report": report is not None,
        "patient_key": st.patient_key,
        "patient_id": st.patient_id,
        "patient_name": st.patient_name,
        "patient_birth_date": st.patient_birth_date,
        "clip_path": st.clip_path,
    }


def study_rows(session: Session, study_ids: Sequence[int]) -> dict[int, StudyRow]:
    """Catalog rows (with the report impression) of the non-withdrawn studies among ``study_ids``."""
    out: dict[int, StudyRow] = {}
    for chunk in in_chunks(list(study_ids)):
        stmt = (
            select(Study)
            .where(Study.id.in_(chunk), Study.state != StudyState.WITHDRAWN)
            .options(selectinload(Study.report))
        )
        for st in session.scalars(stmt):
            out[st.id] = StudyRow(**_row_values(st, st.report))
    return out


def _detail(study: Study) -> StudyDetail:
    report = study.report
    return StudyDetail(
        **_row_values(study, report),
        study_description=study.study_description,
        state=study.state,
        report_text=report.text if report else None,
        findings=report.findings if report else None,
        series=[SeriesInfo(s.view, s.description, s.n_slices, s.n_phases) for s in study.series],
        facts=dict(report.facts.facts) if report is not None and report.facts is not None else None,
    )


def study_details(session: Session, study_ids: Sequence[int]) -> list[StudyDetail]:
    """Details of the given studies in the order given; withdrawn and unknown ids are left out."""
    if not study_ids:
        return []
    stmt = (
        select(Study)
        .where(Study.id.in_(list(study_ids)), Study.state != StudyState.WITHDRAWN)
        .options(selectinload(Study.series), selectinload(Study.report).selectinload(Report.facts))
    )
    by_id = {s.id: _detail(s) for s in session.scalars(stmt)}
    return [by_id[i] for i in study_ids if i in by_id]


def study_detail(session: Session, study_id: int) -> StudyDetail | None:
    found = study_details(session, [study_id])
    return found[0] if found else None


@dataclass(frozen=True)
class SeriesFrames:
    """One series' ordered frames as the catalog references them: ``[path, slice, phase, frame number]``."""

    view: str
    series_number: int
    description: str | None
    n_slices: int
    n_phases: int
    frames: list[list[Any]]


def series_frames(session: Session, study_id: int) -> list[SeriesFrames]:
    """The series of a study with their frames (the native images behind the clips)."""
    rows = session.scalars(select(Series).where(Series.study_id == study_id).order_by(Series.series_number))
    return [SeriesFrames(s.view, s.series_number or 0, s.description, s.n_slices, s.n_phases, list(s.frames or []))
            for s in rows]


def study_by_uid(session: Session, study_uid: str) -> Study | None:
    return session.scalar(select(Study).where(Study.study_uid == study_uid))


def study_key(session: Session, study_uid: str) -> tuple[int, str] | None:
    """``(id, patient_key)`` of a study by UID, or None."""
    row = session.execute(select(Study.id, Study.patient_key).where(Study.study_uid == study_uid)).first()
    return (int(row[0]), str(row[1])) if row else None


def ids_of_patient(session: Session, patient_key: str) -> np.ndarray:
    return np.fromiter(session.scalars(select(Study.id).where(Study.patient_key == patient_key)), dtype=np.int64)


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


def state_counts(session: Session) -> dict[str, int]:
    return {s: n for s, n in session.execute(select(Study.state, func.count()).group_by(Study.state)).all()}


def view_counts(session: Session) -> dict[str, int]:
    return {v: n for v, n in session.execute(select(Series.view, func.count()).group_by(Series.view)).all()}


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
