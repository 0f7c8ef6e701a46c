"""report facts (findings, diagnoses, LGE, numbers read from each report) and full-text search of report text

PostgreSQL: a GIN index on ``to_tsvector('english', text)``. SQLite: the FTS5 table ``reports_fts`` over
``reports.text`` (external content, kept in step by triggers) and filled from the reports already there.
Facts of reports already in the catalog are filled by ``cmr db upgrade`` (and every command that migrates the
catalog) after this revision: reading reports takes the language rules of ``cmrclip.language``, which a revision
may not import (ARCHITECTURE.md).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from catalog.facts import FTS_CONFIG, FTS_INDEX, FTS_TABLE

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_facts",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("lvef", sa.Float(), nullable=True),
        sa.Column("rvef", sa.Float(), nullable=True),
        sa.Column("lvedvi", sa.Float(), nullable=True),
        sa.Column("rvedvi", sa.Float(), nullable=True),
        sa.Column("lv_mass_index", sa.Float(), nullable=True),
        sa.Column("max_wall_thickness_mm", sa.Float(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("report_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX {FTS_INDEX} ON reports USING gin (to_tsvector('{FTS_CONFIG}', text))")
        return
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(text, content='reports', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"CREATE TRIGGER {FTS_TABLE}_ai AFTER INSERT ON reports BEGIN "
        f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    )
    op.execute(
        f"CREATE TRIGGER {FTS_TABLE}_ad AFTER DELETE ON reports BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    op.execute(
        f"CREATE TRIGGER {FTS_TABLE}_au AFTER UPDATE OF text ON reports BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
        f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    )
    op.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {FTS_INDEX}")
    else:
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS_TABLE}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    op.drop_table("report_facts")
