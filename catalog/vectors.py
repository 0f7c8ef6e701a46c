"""The durable vector store the indexer writes and search reads; the FAISS indexes are rebuildable caches of it.

Plain functions over a Session. Vectors are stored as float16 bytes (L2-normalised) and handed out as float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from catalog.chunks import in_chunks
from catalog.models import Report, Study, StudyState, StudyVector

VECTOR_DTYPE = np.float16


def pack_vector(vector: np.ndarray) -> bytes:
    """One L2-normalised vector -> the stored float16 bytes."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def unpack_vectors(blobs: Sequence[bytes], dim: int | None = None) -> np.ndarray:
    """Stored bytes -> float32 ``[N, D]``."""
    if not blobs:
        return np.zeros((0, dim or 0), dtype=np.float32)
    return np.stack([np.frombuffer(b, dtype=VECTOR_DTYPE) for b in blobs]).astype(np.float32)


def put_vectors(session: Session, checkpoint_hash: str, kind: str, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Insert or replace the vectors of ``ids`` for one checkpoint and kind."""
    ids = [int(i) for i in ids]
    for chunk in in_chunks(ids):
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
        for chunk in in_chunks(sorted({int(i) for i in study_ids})):
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


def reports_to_embed(session: Session, checkpoint_hash: str) -> list[tuple[int, str | None, str | None, str | None]]:
    """``(study id, impression, findings, text)`` of linked reports of non-withdrawn studies without a report
    vector of this checkpoint yet (which of the parts is embedded is the indexer's rule)."""
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
    return [(int(sid), imp, fin, txt) for sid, imp, fin, txt in session.execute(stmt)]
