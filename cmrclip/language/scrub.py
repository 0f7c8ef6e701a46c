"""Scrub identifiers out of free text: report bodies and DICOM descriptions.

The one scrubber of the product: the de-identifying ingest (``indexer.deid``) runs it on the way in, and
``search.privacy`` runs it on every report text a researcher is shown (pages, exports, snippets, JSON).

Two layers: the identifiers known for the study (names, MRN, accession, birth date, taken from its DICOM headers)
are replaced wherever they occur, in any common spelling; then patterns catch what the known list cannot:
``Patient: LAST, First``-style header values, dates in common formats, MRN-like digit runs and accession-like
codes. Known ids become their pseudonyms (so a report still names the pseudonymous accession of its study);
dates become the study's modified dates (shifted or cut to the year), birth dates disappear.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TypedDict


class KnownIdentifiers(TypedDict, total=False):
    """What is known about one study's identity, for scrubbing its text.

    names: person names in any form (DICOM ``FAMILY^GIVEN`` or plain).
    ids: original identifier → its replacement (e.g. MRN → pseudonymous patient id, accession → pseudonym).
    birth_date: the patient's birth date; removed wherever it is written.
    date: how any other date is rewritten (the study's date rule); absent: dates become ``[DATE]``.
    """

    names: list[str]
    ids: dict[str, str]
    birth_date: dt.date | None
    date: Callable[[dt.date], str]


NAME = "[NAME]"
ID = "[ID]"
DATE = "[DATE]"
DOB = "[DOB]"

MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan", "januar"), ("february", "feb", "februar"), ("march", "mar", "märz", "maerz"),
            ("april", "apr"), ("may", "mai"), ("june", "jun", "juni"), ("july", "jul", "juli"),
            ("august", "aug"), ("september", "sep", "sept"), ("october", "oct", "oktober", "okt"),
            ("november", "nov"), ("december", "dec", "dezember", "dez"),
        ]
    )
    for m in names
}  # fmt: skip
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))

# Header fields that introduce a person's name ("Patient: MUELLER, Anna", "Pt Mueller, Anna", "Name: Anna Mueller").
# The label is matched in any case, the name must be capitalised; without a colon only "Last, First" counts.
_LABEL = r"(?i:patient(?:'s)? name|patient|pt\.?|name|referring(?: physician)?|physician|reported by|signed by)"
_WORD = r"[A-Z][\w'\-]+"
_NAME_FIELD = re.compile(
    rf"(?P<label>\b{_LABEL}(?:\s*[:#]\s*|\s+(?={_WORD}(?:,\s*|\^))))"
    rf"(?P<value>{_WORD}(?:,\s*|\^|\s+){_WORD}(?:[ ^]{_WORD})?)"
)
_DATE_PATTERNS = [
    (re.compile(r"\b(?P<y>(?:19|20)\d\d)-(?P<m>\d\d?)-(?P<d>\d\d?)\b"), "ymd"),
    (re.compile(r"\b(?P<d>\d\d?)[./](?P<m>\d\d?)[./](?P<y>(?:19|20)\d\d)\b"), "dmy"),
    (re.compile(r"\b(?P<y>(?:19|20)\d\d)(?P<m>[01]\d)(?P<d>[0-3]\d)\b"), "ymd"),
    (re.compile(rf"\b(?P<d>\d\d?)\.?\s+(?P<mon>{_MONTH})\.?\s+(?P<y>(?:19|20)\d\d)\b", re.IGNORECASE), "dmy"),
    (re.compile(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<d>\d\d?),?\s+(?P<y>(?:19|20)\d\d)\b", re.IGNORECASE), "mdy"),
]
_ACCESSION_LIKE = re.compile(r"\b[A-Z]{1,4}-?\d{5,12}\b")
_DIGIT_RUN = re.compile(r"\b\d{6,}\b")
_SENTINEL = re.compile(r"\x00(\d+)\x00")


def _parse(match: re.Match) -> dt.date | None:
    parts = match.groupdict()
    month = MONTHS.get(parts["mon"].lower()) if parts.get("mon") else int(parts["m"])
    try:
        return dt.date(int(parts["y"]), month, int(parts["d"]))
    except (TypeError, ValueError):
        return None


def name_variants(name: str) -> set[str]:
    """Spellings a name can take in text: the whole name, 'LAST, First', 'First Last', and each long part."""
    parts = [p.strip() for p in re.split(r"\^", name) if p.strip()]
    parts = [p for p in parts if not re.fullmatch(r"(?i)dr|prof|md|phd|mr|mrs|ms", p.rstrip("."))]
    out: set[str] = set()
    if len(parts) >= 2:
        family, given = parts[0], parts[1]
        out |= {f"{family}, {given}", f"{given} {family}", f"{family} {given}", f"{family}^{given}"}
    for p in parts:
        out.add(p)
        out |= {w for w in re.split(r"[\s\-]+", p) if len(w) >= 3}
    return {v for v in out if len(v) >= 2}


class _Scrubber:
    """Replaces matches by numbered sentinels first, so later patterns never re-match a replacement."""

    def __init__(self) -> None:
        self.replacements: list[str] = []

    def hold(self, value: str) -> str:
        self.replacements.append(value)
        return f"\x00{len(self.replacements) - 1}\x00"

    def release(self, text: str) -> str:
        return _SENTINEL.sub(lambda m: self.replacements[int(m.group(1))], text)


def deidentify_report(text: str, known: KnownIdentifiers | dict) -> str:
    """The text with names, MRNs, accession numbers and dates replaced (see the module docstring)."""
    s = _Scrubber()
    birth = known.get("birth_date")
    rewrite = known.get("date")

    def date_value(m: re.Match) -> str:
        day = _parse(m)
        if day is None:
            return m.group(0)
        if birth is not None and day == birth:
            return s.hold(DOB)
        return s.hold(rewrite(day) if rewrite else DATE)

    for original, replacement in sorted((known.get("ids") or {}).items(), key=lambda kv: -len(kv[0])):
        if original:
            text = re.sub(rf"(?<![\w]){re.escape(original)}(?![\w])", lambda _m, r=replacement: s.hold(r), text)
    variants = set().union(*(name_variants(n) for n in known.get("names") or [] if n)) if known.get("names") else set()
    for variant in sorted(variants, key=len, reverse=True):
        pattern = r"[\s,^]+".join(re.escape(w) for w in re.split(r"[\s,^]+", variant))
        text = re.sub(rf"(?<![\w]){pattern}(?![\w])", lambda _m: s.hold(NAME), text, flags=re.IGNORECASE)
    text = _NAME_FIELD.sub(lambda m: m.group("label") + s.hold(NAME), text)
    for pattern, _order in _DATE_PATTERNS:
        text = pattern.sub(date_value, text)
    text = _ACCESSION_LIKE.sub(lambda _m: s.hold(ID), text)
    text = _DIGIT_RUN.sub(lambda _m: s.hold(ID), text)
    return s.release(text)
