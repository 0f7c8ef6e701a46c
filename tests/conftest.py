"""Shared fixtures: throwaway catalogs on SQLite and PostgreSQL, offline model loading."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("CMR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


def _make_pg_database() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text

    name = f"cmr_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        from catalog.db import get_engine

        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """An empty, migrated catalog on each backend (PostgreSQL: a throwaway database, dropped afterwards)."""
    from migrations.apply import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        upgrade(url)
        yield url
        return
    if os.environ.get("CI") and not _pg_available():
        pytest.fail("PostgreSQL is required in CI but is not reachable")
    if not _pg_available():
        pytest.skip("PostgreSQL not reachable")
    url, drop = _make_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """An empty, migrated SQLite catalog (for tests where the backend does not matter)."""
    from migrations.apply import upgrade

    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture
def raw_pg_url() -> Iterator[str]:
    """An empty, unmigrated PostgreSQL database."""
    if not _pg_available():
        pytest.skip("PostgreSQL not reachable")
    url, drop = _make_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(scope="session")
def phantom_archive(tmp_path_factory):
    """A small phantom archive shared by the ingest tests: two studies per site preset."""
    from phantom.archive import synthesize

    out = tmp_path_factory.mktemp("phantom") / "archive"
    synthesize(out, 6, seed=11, fault_rate=0.0, progress=False)
    return out
