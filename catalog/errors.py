"""Ingest errors: recorded by every stage, listed by ``cmr errors`` and the status page. Plain functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from catalog.models import IngestError


@dataclass(frozen=True)
class ErrorRow:
    stage: str
    kind: str
    reason: str
    path: str | None
    study_uid: str | None


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


def error_rows(session: Session) -> list[ErrorRow]:
    """Every error as a plain row, by stage, kind and path (``cmr errors``)."""
    return [ErrorRow(e.stage, e.kind, e.reason, e.path, e.study_uid) for e in list_errors(session)]


def errors_by_kind(session: Session) -> dict[str, list[ErrorRow]]:
    """Ingest errors grouped by kind, kinds in name order."""
    out: dict[str, list[ErrorRow]] = {}
    stmt = select(IngestError).order_by(IngestError.kind, IngestError.stage, IngestError.path)
    for e in session.scalars(stmt):
        out.setdefault(e.kind, []).append(ErrorRow(e.stage, e.kind, e.reason, e.path, e.study_uid))
    return out
