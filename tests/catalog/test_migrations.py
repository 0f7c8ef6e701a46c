from __future__ import annotations

from sqlalchemy import inspect

from catalog.db import get_engine
from catalog.migrate import current_revision, downgrade, upgrade
from catalog.models import Base


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_roundtrip(db_url: str) -> None:
    assert _tables(db_url) == set(Base.metadata.tables)
    assert current_revision(db_url) is not None
    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)


def test_models_match_migrations(db_url: str) -> None:
    """Autogenerate against the migrated schema finds nothing to do: models and revisions agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
