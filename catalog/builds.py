"""Index builds: which FAISS file of each kind search serves, and the older ones. Plain functions over a Session."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog.models import IndexBuild


@dataclass(frozen=True)
class IndexBuildInfo:
    kind: str
    checkpoint_hash: str
    index_key: str
    n_vectors: int
    created_at: dt.datetime


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


def active_index_builds(session: Session) -> list[IndexBuildInfo]:
    """The index files search serves (one per kind), for the status page when the engine cannot open."""
    stmt = select(IndexBuild).where(IndexBuild.active.is_(True)).order_by(IndexBuild.kind)
    return [
        IndexBuildInfo(b.kind, b.checkpoint_hash, b.index_key, b.n_vectors, b.created_at) for b in session.scalars(stmt)
    ]
