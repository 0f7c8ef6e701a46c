"""Report facts: what each report states (stored by ``indexer.reports``), and full-text search of report text.

Facts are ``cmrclip.language.ReportFacts.to_json()`` dicts: findings, diagnoses, LGE pattern and territory,
numbers. They hold no identifiers (numbers, finding names and vocabulary words only), so every role sees them.

Full-text search runs in the database: PostgreSQL ranks ``to_tsvector('english', text)`` matches (GIN index
``ix_reports_fulltext``) with ``ts_rank``; SQLite ranks FTS5 ``reports_fts`` matches (Porter stemmer) with BM25.
Words are OR-ed and a word of five letters or more also matches as a prefix ("sarcoid" finds "sarcoidosis").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from catalog.chunks import in_chunks
from catalog.models import Report, ReportFactsRow

FTS_TABLE = "reports_fts"  # SQLite FTS5 (and its shadow tables reports_fts_*), not an ORM table
FTS_INDEX = "ix_reports_fulltext"  # PostgreSQL GIN expression index
FTS_CONFIG = "english"
# The numbers kept as columns (filters, `cmr studies --json`); the rest stay in the JSON.
NUMBER_COLUMNS: tuple[str, ...] = ("lvef", "rvef", "lvedvi", "rvedvi", "lv_mass_index", "max_wall_thickness_mm")
FULLTEXT_MAX_WORDS = 12
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def is_fulltext_object(name: str | None) -> bool:
    """Whether a table or index is the full-text index (SQLite FTS5 table or its shadow tables, PostgreSQL GIN
    expression index): made by revision 0003, not the ORM, so autogenerate leaves it alone."""
    return bool(name) and (name in (FTS_TABLE, FTS_INDEX) or name.startswith(FTS_TABLE + "_"))


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Alembic's ``include_name`` hook: autogenerate and schema comparisons leave the full-text index alone."""
    return not (type_ in ("table", "index") and is_fulltext_object(name))


def put_facts(session: Session, report_id: int, facts: dict[str, Any], version: str) -> None:
    """Store (or replace) one report's facts."""
    row = session.get(ReportFactsRow, report_id)
    if row is None:
        row = ReportFactsRow(report_id=report_id)
        session.add(row)
    row.version, row.facts = version, dict(facts)
    for name in NUMBER_COLUMNS:
        value = facts.get(name)
        setattr(row, name, None if value is None else float(value))


def reports_needing_facts(session: Session, version: str, limit: int | None = None) -> list[tuple[int, str]]:
    """``(report id, text)`` of reports with no facts, or facts read by other rules than ``version``."""
    stmt = (
        select(Report.id, Report.text)
        .outerjoin(ReportFactsRow, ReportFactsRow.report_id == Report.id)
        .where((ReportFactsRow.report_id.is_(None)) | (ReportFactsRow.version != version))
        .order_by(Report.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(int(i), t or "") for i, t in session.execute(stmt).all()]


def facts_of_studies(session: Session, study_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Study id → facts of its linked report (studies without a report or facts are left out)."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in in_chunks(list(study_ids)):
        stmt = (
            select(Report.study_id, ReportFactsRow.facts)
            .join(ReportFactsRow, ReportFactsRow.report_id == Report.id)
            .where(Report.study_id.in_(chunk))
        )
        out.update({int(sid): dict(f or {}) for sid, f in session.execute(stmt).all()})
    return out


def all_study_facts(session: Session) -> list[tuple[int, dict[str, Any]]]:
    """``(study id, facts)`` of every linked report with facts, by study id (the search's in-memory table)."""
    stmt = (
        select(Report.study_id, ReportFactsRow.facts)
        .join(ReportFactsRow, ReportFactsRow.report_id == Report.id)
        .where(Report.study_id.is_not(None))
        .order_by(Report.study_id)
    )
    return [(int(sid), dict(f or {})) for sid, f in session.execute(stmt).all()]


def facts_signature(session: Session) -> tuple[Any, ...]:
    """Changes when facts are added, re-read or deleted."""
    return tuple(session.execute(select(func.count(ReportFactsRow.report_id),
                                        func.max(ReportFactsRow.updated_at))).one())


def fulltext_words(words: Iterable[str]) -> list[str]:
    """The searchable words of a text: letters and digits, lower case, two characters or more, no repeats."""
    out: list[str] = []
    for w in words:
        for token in _WORD.findall(w.lower()):
            if len(token) >= 2 and token not in out:
                out.append(token)
    return out[:FULLTEXT_MAX_WORDS]


def fulltext(session: Session, text_: str, limit: int = 100) -> list[tuple[int, float]]:
    """Studies whose linked report text matches any word of ``text_``, best first: ``[(study id, rank)]`` with
    rank > 0, larger is better (PostgreSQL ``ts_rank``; SQLite ``-bm25``)."""
    words = fulltext_words([text_])
    if not words:
        return []
    if session.get_bind().dialect.name == "postgresql":
        query = " | ".join(f"{w}:*" if len(w) >= 5 else w for w in words)
        rows = session.execute(
            text(
                f"SELECT r.study_id, ts_rank(to_tsvector('{FTS_CONFIG}', r.text), q) AS rank "
                f"FROM reports r, to_tsquery('{FTS_CONFIG}', :q) q "
                f"WHERE r.study_id IS NOT NULL AND to_tsvector('{FTS_CONFIG}', r.text) @@ q "
                "ORDER BY rank DESC, r.study_id LIMIT :n"
            ),
            {"q": query, "n": limit},
        ).all()
        return [(int(s), float(r) + 1e-9) for s, r in rows]
    query = " OR ".join(f'"{w}"*' if len(w) >= 5 else f'"{w}"' for w in words)
    rows = session.execute(
        text(
            f"SELECT r.study_id, -bm25({FTS_TABLE}) AS rank FROM {FTS_TABLE} "
            f"JOIN reports r ON r.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH :q AND r.study_id IS NOT NULL ORDER BY rank DESC, r.study_id LIMIT :n"
        ),
        {"q": query, "n": limit},
    ).all()
    return [(int(s), max(float(r), 1e-9)) for s, r in rows]


def facts_record(facts: dict[str, Any] | None) -> dict[str, Any]:
    """The facts as ``cmr studies --json`` and ``cmr search --json`` give them: the six numbers (or null), findings
    (name → present | absent | uncertain; findings the report does not mention are left out), LGE pattern,
    territories and diagnoses. A study without a report has every number null and no findings."""
    facts = facts or {}
    out: dict[str, Any] = {name: facts.get(name) for name in NUMBER_COLUMNS}
    out["findings"] = dict(facts.get("findings") or {})
    for name in ("lge_pattern", "territories", "diagnoses"):
        out[name] = list(facts.get(name) or [])
    return out


def facts_columns(facts: dict[str, Any] | None) -> dict[str, Any]:
    """The facts as flat CSV columns (cohort and case-set exports)."""
    rec = facts_record(facts)
    out = {name: rec[name] for name in NUMBER_COLUMNS}
    out["findings"] = "; ".join(f"{k}={v}" for k, v in rec["findings"].items())
    for name in ("lge_pattern", "territories", "diagnoses"):
        out[name] = " ".join(rec[name])
    return out
