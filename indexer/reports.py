"""Import a RIS report export (CSV or JSON lines, any text encoding) and extract the impression and findings.

Reading (:func:`read_report_export`: a path → rows) and importing (:func:`import_reports`: rows → catalog) are
apart, so a de-identifying ingest hands its scrubbed rows over in memory. Nothing in an export stops the batch.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from catalog.errors import clear_errors, record_error
from catalog.facts import put_facts, reports_needing_facts
from catalog.reports import upsert_report
from cmrclip.language.pipeline import HEADING, SECTION_HEADINGS
from indexer.dicom.headers import parse_date

log = logging.getLogger(__name__)

# Version of the facts read from report text (cmrclip.language): raise it when the rules change, and the
# facts of every report are read again by `cmr db upgrade` (backfill_facts).
FACTS_VERSION = "2"
FACTS_BATCH = 500

# Column names seen in RIS exports, per field.
ACCESSION_COLUMNS = ("accession", "accession_number", "accessionnumber", "acc", "acc_no")
TEXT_COLUMNS = ("report_text", "text", "report", "report_body", "body")
DATE_COLUMNS = ("report_date", "date", "signed_date", "finalized")

@dataclass(frozen=True)
class ReportRow:
    accession: str
    text: str
    report_date: dt.date | None
    where: str = ""  # "row 3" / "line 3" of its export


@dataclass(frozen=True)
class RowProblem:
    """A row (or the whole export: ``where`` empty) that could not be read; recorded, never fatal."""

    where: str
    reason: str
    kind: str = "bad_report_row"


@dataclass
class ReportImport:
    imported: int = 0  # reports upserted (one per accession)
    rejected: int = 0  # rows (or exports) that could not be read
    conflicts: int = 0  # accessions given twice with different texts (the later row is kept)


def split_sections(text: str) -> dict[str, str]:
    """Section name → text, for the headings found; the same section twice is joined."""
    matches = list(HEADING.finditer(text))
    sections: dict[str, str] = {}
    for i, m in enumerate(matches):
        name = next(k for k in SECTION_HEADINGS if m.group(k))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end() : end].strip(" \t\n:-")
        if body:
            sections[name] = (sections.get(name, "") + "\n" + body).strip()
    return sections


def extract_impression(text: str) -> str | None:
    """The impression section; failing that, the last paragraph (where radiologists put their conclusion)."""
    sections = split_sections(text)
    if sections.get("impression"):
        return sections["impression"]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return paragraphs[-1] if paragraphs else None


def _pick(row: dict, names: tuple[str, ...]) -> str | None:
    lowered = {re.sub(r"[\s_]+", "_", k.strip().lower()): v for k, v in row.items() if isinstance(k, str)}
    for n in names:
        if lowered.get(n):
            return str(lowered[n])
    return None


def decode_export(data: bytes) -> tuple[str, str] | None:
    """The export's text and encoding: UTF-8 (with or without BOM) when it is, else what charset-normalizer
    detects (RIS exports in cp1252 / latin-1 are common); None when no encoding fits."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # Text alone cannot tell cp1250 from cp1252 where they differ only in symbols (² or ˛): on a tie, the Western
    # European code page of most RIS exports wins.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    best = next((m for m in tied if m.encoding == "cp1252"), best)
    return str(best), best.encoding


def read_report_export(path: Path) -> Iterator[ReportRow | RowProblem]:
    """Rows of a CSV or JSONL export in any encoding; what cannot be read yields a :class:`RowProblem`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield RowProblem("", f"the export cannot be read ({exc.strerror or type(exc).__name__})", "report_unreadable")
        return
    decoded = decode_export(data)
    if decoded is None:
        yield RowProblem("", "the export is in no text encoding that could be recognised", "report_unreadable")
        return
    text, encoding = decoded
    if encoding != "utf-8":
        log.warning("report export %s is not UTF-8: read as %s", path.name, encoding)
    records = _jsonl(text) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else _csv(text)
    for where, record in records:
        if isinstance(record, RowProblem):
            yield record
            continue
        accession, body = _pick(record, ACCESSION_COLUMNS), _pick(record, TEXT_COLUMNS)
        if not accession or not accession.strip() or not body:
            yield RowProblem(where, f"{where}: no accession number or no report text")
            continue
        yield ReportRow(
            accession=accession.strip(),
            text=body,
            report_date=parse_date((_pick(record, DATE_COLUMNS) or "").replace("-", "")),
            where=where,
        )


def _jsonl(text: str) -> Iterator[tuple[str, dict | RowProblem]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, RowProblem(where, f"{where}: not JSON ({exc.msg})")
            continue
        yield where, record if isinstance(record, dict) else RowProblem(where, f"{where}: not a JSON object")


def _csv(text: str) -> Iterator[tuple[str, dict | RowProblem]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    n = 0
    while True:
        n += 1
        where = f"row {n}"
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a NUL byte, a field over the size limit: this row only
            yield where, RowProblem(where, f"{where}: malformed CSV ({exc})")
            continue
        yield where, record


def import_reports(db: sessionmaker, rows: Iterable[ReportRow | RowProblem], *, ref: str) -> ReportImport:
    """Upsert the reports of one export (``ref``: where it came from, the prefix of its error rows).

    Rows that could not be read are recorded as errors; an accession given twice with different texts is recorded
    as a conflict (the later row is kept, as a corrected report usually comes later in an export).
    """
    counts = ReportImport()
    latest: dict[str, ReportRow] = {}
    with db.begin() as session:
        clear_errors(session, stage="report", path_prefix=ref)
        for item in rows:
            if isinstance(item, RowProblem):
                where = f"{ref}#{item.where}" if item.where else ref
                record_error(session, stage="report", kind=item.kind, reason=item.reason, path=where)
                counts.rejected += 1
                continue
            earlier = latest.get(item.accession)
            if earlier is not None and earlier.text.strip() != item.text.strip():
                record_error(
                    session, stage="report", kind="duplicate_accession", path=f"{ref}#{item.where}",
                    reason=f"{item.where}: the same accession number as {earlier.where}, with another text; "
                    f"{item.where} is kept",
                )  # fmt: skip
                counts.conflicts += 1
            latest[item.accession] = item
        reports = []
        for item in latest.values():
            sections = split_sections(item.text)
            reports.append(upsert_report(
                session,
                accession=item.accession,
                text=item.text,
                impression=extract_impression(item.text),
                findings=sections.get("findings"),
                report_date=item.report_date,
            ))
        session.flush()
        store_facts(session, [(r.id, r.text) for r in reports])
        counts.imported = len(latest)
    return counts


def store_facts(session, reports: list[tuple[int, str]]) -> None:
    """Read the facts of these reports (``cmrclip.language``) and store them with the report."""
    from cmrclip.language import extract_many

    for start in range(0, len(reports), FACTS_BATCH):
        chunk = reports[start : start + FACTS_BATCH]
        for (report_id, _), facts in zip(chunk, extract_many([t for _, t in chunk]), strict=True):
            put_facts(session, report_id, facts.to_json(), FACTS_VERSION)


def backfill_facts(db: sessionmaker) -> int:
    """Read the facts of every report that has none (imported before revision 0003) or has facts of older
    rules; committed per batch, so an interrupted backfill resumes. Returns how many reports were read."""
    done = 0
    while True:
        with db.begin() as session:
            todo = reports_needing_facts(session, FACTS_VERSION, limit=FACTS_BATCH)
            if not todo:
                return done
            store_facts(session, todo)
        done += len(todo)
        log.info("report facts read: %d", done)
