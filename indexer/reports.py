"""Import a RIS report export (CSV or JSON lines) and extract the impression and findings sections."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from catalog import queries
from indexer.headers import parse_date

# Column names seen in RIS exports, per field.
ACCESSION_COLUMNS = ("accession", "accession_number", "accessionnumber", "acc", "acc_no")
TEXT_COLUMNS = ("report_text", "text", "report", "report_body", "body")
DATE_COLUMNS = ("report_date", "date", "signed_date", "finalized")

# Section headings as radiologists write them; group name = section.
SECTION_HEADINGS = {
    "impression": r"impression|conclusions?|summary|opinion|assessment|final diagnosis|diagnosis|comment",
    "findings": r"findings|results|report|description",
    "indication": r"indications?|clinical (?:history|information|details|indication)|history|reason for (?:study|exam)",
    "technique": r"technique|protocol|sequences|procedure",
    "comparison": r"comparison|prior studies?",
    "recommendation": r"recommendations?|advice|plan",
}
_HEADING = re.compile(
    r"^[ \t]*(?P<head>" + "|".join(f"(?P<{k}>{v})" for k, v in SECTION_HEADINGS.items()) + r")[ \t]*(?::|-|\n|$)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class ReportRow:
    accession: str
    text: str
    report_date: object | None


def split_sections(text: str) -> dict[str, str]:
    """Section name → text, for the headings found; the same section twice is joined."""
    matches = list(_HEADING.finditer(text))
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
    lowered = {re.sub(r"[\s_]+", "_", k.strip().lower()): v for k, v in row.items() if k}
    for n in names:
        if lowered.get(n):
            return str(lowered[n])
    return None


def read_report_export(path: Path) -> Iterator[ReportRow | str]:
    """Rows of a CSV or JSONL export; a malformed row yields an error message instead."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        with path.open(encoding="utf-8") as fh:
            rows = []
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    yield f"line {n}: not JSON ({exc.msg})"
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, 1):
        accession, text = _pick(row, ACCESSION_COLUMNS), _pick(row, TEXT_COLUMNS)
        if not accession or not text:
            yield f"row {n}: no accession number or no report text"
            continue
        yield ReportRow(
            accession=accession.strip(),
            text=text,
            report_date=parse_date((_pick(row, DATE_COLUMNS) or "").replace("-", "")),
        )


def import_reports(session: Session, path: Path) -> tuple[int, int]:
    """Upsert every report of the export; returns (imported, rejected)."""
    ok = bad = 0
    queries.clear_errors(session, stage="report", path_prefix=str(Path(path).resolve()))
    for item in read_report_export(path):
        if isinstance(item, str):
            queries.record_error(
                session,
                stage="report",
                kind="bad_report_row",
                reason=item,
                path=f"{Path(path).resolve()}#{item.split(':')[0]}",
            )
            bad += 1
            continue
        sections = split_sections(item.text)
        queries.upsert_report(
            session,
            accession=item.accession,
            text=item.text,
            impression=extract_impression(item.text),
            findings=sections.get("findings"),
            report_date=item.report_date,
        )
        ok += 1
    return ok, bad
