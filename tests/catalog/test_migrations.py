from __future__ import annotations

from sqlalchemy import inspect

from catalog.db import get_engine
from catalog.facts import include_name, is_fulltext_object
from catalog.models import Base
from migrations.apply import current_revision, downgrade, upgrade


def _tables(url: str) -> set[str]:
    names = set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}
    return {n for n in names if not is_fulltext_object(n)}


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
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
