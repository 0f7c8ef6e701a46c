"""Saved cohorts: query, filters, threshold and checkpoint hash, enough to reproduce the list of studies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Cohort


@dataclass(frozen=True)
class SavedCohort:
    id: int
    name: str
    query: str
    mode: str
    filters: dict[str, Any]
    threshold: float
    checkpoint_hash: str
    study_ids: list[int]
    owner: str | None
    created_at: dt.datetime


def _row(c: Cohort) -> SavedCohort:
    return SavedCohort(
        c.id,
        c.name,
        c.query,
        c.mode,
        dict(c.filters or {}),
        c.threshold,
        c.checkpoint_hash,
        [int(i) for i in c.study_ids or []],
        c.owner,
        c.created_at,
    )


def save(
    session: Session,
    *,
    name: str,
    query: str,
    mode: str,
    filters: dict[str, Any],
    threshold: float,
    checkpoint_hash: str,
    study_ids: Sequence[int],
    owner: str | None = None,
) -> int:
    """Store a cohort and return its id; ``filters`` must be JSON-serialisable."""
    if not name.strip():
        raise ValueError("a cohort needs a name")
    cohort = Cohort(
        name=name.strip(),
        query=query,
        mode=mode,
        filters=filters,
        threshold=float(threshold),
        checkpoint_hash=checkpoint_hash,
        study_ids=[int(i) for i in study_ids],
        owner=owner,
    )
    session.add(cohort)
    session.flush()
    return cohort.id


def list_cohorts(session: Session) -> list[SavedCohort]:
    """Every saved cohort, newest first."""
    return [_row(c) for c in session.scalars(select(Cohort).order_by(Cohort.created_at.desc(), Cohort.id.desc()))]
