"""The audit log: who searched, viewed or exported what, and when. Plain functions over a Session."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import AuditEntry


@dataclass(frozen=True)
class AuditRow:
    at: dt.datetime
    user: str
    role: str
    action: str
    query: str | None
    filters: dict[str, Any] | None
    n_results: int | None
    detail: str | None


def record(
    session: Session,
    *,
    user: str,
    role: str,
    action: str,
    query: str | None = None,
    filters: dict[str, Any] | None = None,
    n_results: int | None = None,
    detail: str | None = None,
) -> None:
    """Append one audit row; ``filters`` must be JSON-serialisable (dates as ISO strings).

    Actions: search, similar, view_study, export, cohort_save (the UI and `cmr search`), list_studies and
    list_errors (`cmr studies`, `cmr errors`). The UI records its authenticated user, the CLI `CMR_USER` or the
    operating-system user.
    """
    session.add(
        AuditEntry(
            user=user[:100],
            role=role,
            action=action,
            query=query,
            filters=filters,
            n_results=n_results,
            detail=detail,
        )
    )


def latest(session: Session, limit: int = 50) -> list[AuditRow]:
    """The newest ``limit`` rows, newest first."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    return [AuditRow(r.at, r.user, r.role, r.action, r.query, r.filters, r.n_results, r.detail) for r in rows]
