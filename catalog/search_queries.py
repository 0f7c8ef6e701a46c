"""Catalog queries for embedding and search: the vector store, index builds, filter allow-lists, hit rows.

Plain functions over a Session. Vectors are stored as float16 bytes (L2-normalised) and handed out as float32.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from catalog.models import IndexBuild, Report, Study, StudyState, StudyVector

VECTOR_DTYPE = np.float16
# Chunk size of IN (...) lists: stays under SQLite's and psycopg's parameter limits.
_IN_CHUNK = 20_000


def pack_vector(vector: np.ndarray) -> bytes:
    """One L2-normalised vector -> the stored float16 bytes."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def unpack_vectors(blobs: Sequence[bytes], dim: int | None = None) -> np.ndarray:
    """Stored bytes -> float32 ``[N, D]``."""
    if not blobs:
        return np.zeros((0, dim or 0), dtype=np.float32)
    return np.stack([np.frombuffer(b, dtype=VECTOR_DTYPE) for b in blobs]).astype(np.float32)


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield [int(i) for i in ids[start : start + _IN_CHUNK]]


# --- vector store -------------------------------------------------------------------------------------------------


def put_vectors(session: Session, checkpoint_hash: str, kind: str, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Insert or replace the vectors of ``ids`` for one checkpoint and kind."""
    ids = [int(i) for i in ids]
    for chunk in _chunks(ids):
        session.execute(
            delete(StudyVector).where(
                StudyVector.checkpoint_hash == checkpoint_hash,
                StudyVector.kind == kind,
                StudyVector.study_id.in_(chunk),
            )
        )
    session.add_all(
        StudyVector(study_id=i, checkpoint_hash=checkpoint_hash, kind=kind, vector=pack_vector(v))
        for i, v in zip(ids, vectors, strict=True)
    )


def vectors_of(
    session: Session, checkpoint_hash: str, kind: str, study_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64 [N], vectors float32 [N, D])`` of a checkpoint and kind, ordered by id.

    ``study_ids=None`` means every stored vector of a study that is not withdrawn.
    """
    base = (
        select(StudyVector.study_id, StudyVector.vector)
        .join(Study, Study.id == StudyVector.study_id)
        .where(StudyVector.checkpoint_hash == checkpoint_hash, StudyVector.kind == kind)
    )
    if study_ids is None:
        rows = session.execute(base.where(Study.state != StudyState.WITHDRAWN).order_by(StudyVector.study_id)).all()
    else:
        rows = []
        for chunk in _chunks(sorted({int(i) for i in study_ids})):
            rows.extend(session.execute(base.where(StudyVector.study_id.in_(chunk)).order_by(StudyVector.study_id)))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return ids, unpack_vectors([r[1] for r in rows])


def vector_ids(session: Session, checkpoint_hash: str, kind: str) -> np.ndarray:
    """Sorted int64 ids of non-withdrawn studies with a stored vector of this checkpoint and kind."""
    stmt = (
        select(StudyVector.study_id)
        .join(Study, Study.id == StudyVector.study_id)
        .where(
            StudyVector.checkpoint_hash == checkpoint_hash,
            StudyVector.kind == kind,
            Study.state != StudyState.WITHDRAWN,
        )
        .order_by(StudyVector.study_id)
    )
    return np.fromiter(session.scalars(stmt), dtype=np.int64)


# --- studies and reports to embed -----------------------------------------------------------------------------------


def studies_to_embed(session: Session, checkpoint_hash: str) -> list[tuple[int, str]]:
    """``(study id, clip path)`` of preprocessed, non-withdrawn studies without a video vector of this checkpoint."""
    has_vector = exists().where(
        StudyVector.study_id == Study.id,
        StudyVector.checkpoint_hash == checkpoint_hash,
        StudyVector.kind == "video",
    )
    stmt = (
        select(Study.id, Study.clip_path)
        .where(Study.state == StudyState.PREPROCESSED, Study.clip_path.is_not(None), ~has_vector)
        .order_by(Study.id)
    )
    return [(int(i), str(p)) for i, p in session.execute(stmt)]


def report_text(impression: str | None, findings: str | None, text: str | None) -> str:
    """The text of a report that is embedded: impression and findings, else the whole text."""
    parts = [p.strip() for p in (impression, findings) if p and p.strip()]
    return "\n".join(parts) if parts else (text or "").strip()


def reports_to_embed(session: Session, checkpoint_hash: str) -> list[tuple[int, str]]:
    """``(study id, report text)`` of linked reports of non-withdrawn studies without a report vector yet."""
    has_vector = exists().where(
        StudyVector.study_id == Report.study_id,
        StudyVector.checkpoint_hash == checkpoint_hash,
        StudyVector.kind == "report",
    )
    stmt = (
        select(Report.study_id, Report.impression, Report.findings, Report.text)
        .join(Study, Study.id == Report.study_id)
        .where(Study.state != StudyState.WITHDRAWN, ~has_vector)
        .order_by(Report.study_id)
    )
    out = [(int(sid), report_text(imp, fin, txt)) for sid, imp, fin, txt in session.execute(stmt)]
    return [(sid, t) for sid, t in out if t]


# --- index builds -----------------------------------------------------------------------------------------------------


def active_builds(session: Session) -> dict[str, IndexBuild]:
    """The active build of each kind."""
    return {b.kind: b for b in session.scalars(select(IndexBuild).where(IndexBuild.active.is_(True)))}


def activate_build(session: Session, build: IndexBuild) -> None:
    """Add ``build`` and make it the only active one of its kind (call inside one transaction)."""
    session.execute(update(IndexBuild).where(IndexBuild.kind == build.kind).values(active=False))
    build.active = True
    session.add(build)


def builds_of(session: Session, kind: str) -> Sequence[IndexBuild]:
    """Every build of a kind, newest first."""
    return session.scalars(select(IndexBuild).where(IndexBuild.kind == kind).order_by(IndexBuild.id.desc())).all()


# --- search: hit rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HitRow:
    """The catalog fields a hit shows."""

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
    clip_path: str | None


def hit_rows(session: Session, study_ids: Sequence[int]) -> dict[int, HitRow]:
    """Catalog rows (with the report impression) of the non-withdrawn studies among ``study_ids``."""
    out: dict[int, HitRow] = {}
    for chunk in _chunks(list(study_ids)):
        stmt = (
            select(Study, Report.id, Report.impression)
            .outerjoin(Report, Report.study_id == Study.id)
            .where(Study.id.in_(chunk), Study.state != StudyState.WITHDRAWN)
        )
        for st, report_id, impression in session.execute(stmt):
            out[st.id] = HitRow(
                study_id=st.id,
                study_uid=st.study_uid,
                accession=st.accession,
                study_date=st.study_date,
                patient_age=st.patient_age,
                patient_sex=st.patient_sex,
                institution=st.institution,
                manufacturer=st.manufacturer,
                scanner_model=st.scanner_model,
                field_strength=st.field_strength,
                views=tuple(st.views or ()),
                impression=impression,
                has_report=report_id is not None,
                patient_key=st.patient_key,
                patient_id=st.patient_id,
                patient_name=st.patient_name,
                clip_path=st.clip_path,
            )
    return out


def study_key(session: Session, study_uid: str) -> tuple[int, str] | None:
    """``(id, patient_key)`` of a study by UID, or None."""
    row = session.execute(select(Study.id, Study.patient_key).where(Study.study_uid == study_uid)).first()
    return (int(row[0]), str(row[1])) if row else None


def ids_of_patient(session: Session, patient_key: str) -> np.ndarray:
    return np.fromiter(session.scalars(select(Study.id).where(Study.patient_key == patient_key)), dtype=np.int64)
