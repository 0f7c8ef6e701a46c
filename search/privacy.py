"""What each role may see: the one rule every surface applies (UI pages, CLI tables and JSON, exports, logs).

A **clinician** sees everything the catalog holds: patient name, patient ID, birth date, accession number, study
UID, exact dates, file paths and the report as imported.

A **researcher** sees none of those. What is left: the catalog's study number, the pseudonymous patient key, the
study year (HIPAA counts dates of service as identifiers), the age (90 and over pooled, as HIPAA's Safe Harbor
asks), sex, site, scanner, views, and report text scrubbed by ``cmrclip.language.scrub``: the name, MRN, accession
number, study UID and birth date of that very study's catalog row are removed wherever they occur, in any common
spelling, then header-style names, dates (cut to the year), MRN-like numbers and accession-like codes. Error
reasons lose file paths (archive folders are patient IDs and accession numbers) and UIDs.

URLs carry only study numbers, for both roles. The functions take any object with the catalog's field names
(``search.hits.Hit`` and ``catalog.studies.StudyDetail`` both extend ``catalog.studies.StudyRow``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from catalog.facts import facts_columns, facts_record
from cmrclip.language.scrub import ID, KnownIdentifiers, deidentify_report

CLINICIAN = "clinician"
RESEARCHER = "researcher"
ROLES = (CLINICIAN, RESEARCHER)

_IDENTIFIER_FIELDS = ("patient_name", "patient_id", "accession", "patient_birth_date")
_TEXT_FIELDS = ("impression", "findings", "report_text")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\",;()\[\]]+)+[/\\]?")
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def is_clinician(role: str) -> bool:
    return role == CLINICIAN


# --- the rule on rows ---------------------------------------------------------------------------------------------


def known_identifiers(obj: Any) -> KnownIdentifiers:
    """What the study's catalog row says about who it is, for scrubbing its texts."""
    ids = {v: ID for v in (getattr(obj, "patient_id", None), getattr(obj, "accession", None),
                           getattr(obj, "study_uid", None)) if v}
    name = getattr(obj, "patient_name", None)
    return KnownIdentifiers(names=[name] if name else [], ids=ids,
                            birth_date=getattr(obj, "patient_birth_date", None), date=lambda d: str(d.year))


def scrub_report(text: str | None, obj: Any, role: str) -> str | None:
    """A report text (or snippet) of the study ``obj`` as the role may read it."""
    if text is None or is_clinician(role):
        return text
    return deidentify_report(text, known_identifiers(obj))


def scrub_free_text(text: str | None, role: str) -> str | None:
    """Free text of no known study (error reasons): without file paths and UIDs for a researcher."""
    if text is None or is_clinician(role):
        return text
    text = _UID.sub("[UID]", _PATH.sub("[path]", text))
    return deidentify_report(text, {})


def for_role(obj: Any, role: str) -> Any:
    """``obj`` (a hit or study detail) as the role may see it: for a researcher, texts scrubbed with the row's own
    identifiers, then the identifiers themselves emptied. The study UID and date stay for the program's own use
    (previews, similar-case search, filters); every rendering below leaves them out for a researcher."""
    if is_clinician(role):
        return obj
    names = {f.name for f in dataclasses.fields(obj)}
    changes: dict[str, Any] = {f: scrub_report(getattr(obj, f), obj, role) for f in _TEXT_FIELDS if f in names}
    changes.update({f: None for f in _IDENTIFIER_FIELDS if f in names})
    return dataclasses.replace(obj, **changes)


def filter_options_for_role(options: Any, role: str) -> Any:
    """The search filters' choices: for a researcher the date range spans whole years (its ends would otherwise
    be the exact dates of the first and the last study)."""
    if is_clinician(role) or options.date_range is None:
        return options
    first, last = options.date_range
    return dataclasses.replace(options, date_range=(dt.date(first.year, 1, 1), dt.date(last.year, 12, 31)))


# --- renderings ---------------------------------------------------------------------------------------------------


def study_number(obj: Any) -> str:
    return f"Study #{obj.study_id}"


def date_text(value: dt.date | None, role: str) -> str:
    if value is None:
        return "date unknown"
    return value.isoformat() if is_clinician(role) else str(value.year)


def age_value(age: int | None, role: str) -> int | str | None:
    return "90+" if age is not None and age >= 90 and not is_clinician(role) else age


def age_text(age: int | None, role: str) -> str:
    if age is None:
        return "age ?"
    return f"{age_value(age, role)} y"


def age_sex_text(obj: Any, role: str) -> str:
    return f"{age_text(obj.patient_age, role)} · {obj.patient_sex or '?'}"


def patient_line(obj: Any, role: str) -> str:
    """Who the study belongs to, as far as the role may know."""
    if is_clinician(role):
        name = (obj.patient_name or "name unknown").replace("^", " ").strip()
        return f"{name} · ID {obj.patient_id or '?'} · Acc {obj.accession or '?'}"
    return f"Patient {obj.patient_key} · {study_number(obj)}"


def scanner_text(obj: Any) -> str:
    strength = f"{obj.field_strength:g} T" if obj.field_strength else None
    parts = [obj.institution, " ".join(p for p in (obj.manufacturer, obj.scanner_model) if p) or None, strength]
    return " · ".join(p for p in parts if p) or "scanner unknown"


def metadata_rows(obj: Any, role: str) -> list[tuple[str, str]]:
    """Label/value rows for a study's metadata table."""
    rows = [("Study", study_number(obj))]
    if is_clinician(role):
        rows += [
            ("Patient name", (obj.patient_name or "").replace("^", " ").strip() or "—"),
            ("Patient ID", obj.patient_id or "—"),
            ("Birth date", obj.patient_birth_date.isoformat() if getattr(obj, "patient_birth_date", None) else "—"),
            ("Accession", obj.accession or "—"),
            ("Study UID", obj.study_uid),
        ]
    else:
        rows.append(("Patient key", obj.patient_key))
    rows += [
        ("Study date" if is_clinician(role) else "Study year", date_text(obj.study_date, role)),
        ("Age / sex", age_sex_text(obj, role)),
        ("Institution", obj.institution or "—"),
        ("Scanner", " ".join(p for p in (obj.manufacturer, obj.scanner_model) if p) or "—"),
        ("Field strength", f"{obj.field_strength:g} T" if obj.field_strength else "—"),
        ("Views", ", ".join(v.upper() for v in obj.views or []) or "none"),
    ]
    return rows


def export_record(obj: Any, role: str) -> dict[str, Any]:
    """One CSV row: identifiers for clinicians, pseudonyms only for researchers."""
    record: dict[str, Any] = {"study_number": obj.study_id}
    if is_clinician(role):
        record.update(
            study_uid=obj.study_uid, accession=obj.accession, patient_id=obj.patient_id,
            patient_name=obj.patient_name, study_date=obj.study_date.isoformat() if obj.study_date else None,
        )
    else:
        record.update(patient_key=obj.patient_key, study_year=obj.study_date.year if obj.study_date else None)
    record.update(
        patient_age=age_value(obj.patient_age, role),
        patient_sex=obj.patient_sex,
        institution=obj.institution,
        manufacturer=obj.manufacturer,
        field_strength=obj.field_strength,
        views=" ".join(obj.views or []),
    )
    if hasattr(obj, "facts"):  # what the report states: numbers, finding names, vocabulary words; no identifiers
        record.update(facts_columns(obj.facts))
    return record


def hit_record(hit: Any, role: str) -> dict[str, Any]:
    """A search hit as JSON (``cmr search --json``): every field for a clinician; for a researcher the export
    record plus rank, scores and the scrubbed impression (no clip path: its file name is the study UID)."""
    if is_clinician(role):
        return hit.to_json()
    shown = for_role(hit, role)
    return {
        "rank": hit.rank, "score": hit.score, "signals": list(hit.signals), "signal_scores": dict(hit.signal_scores),
        **export_record(shown, role), "scanner_model": hit.scanner_model, "has_report": hit.has_report,
        "impression": shown.impression, "why": hit.why, "facts": facts_record(hit.facts),
    }


def study_list_record(study: Any, error: str | None, role: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of ``cmr studies`` (``study`` is a catalog ``Study``; ``facts`` its report's facts, if any)."""
    head = ({"study_uid": study.study_uid, "accession": study.accession} if is_clinician(role)
            else {"study_number": study.id})
    return {**head, "site": study.institution, "manufacturer": study.manufacturer, "views": list(study.views or []),
            "state": study.state, "error": scrub_free_text(error, role), "facts": facts_record(facts)}


def error_record(error: Any, role: str) -> dict[str, Any]:
    """One row of ``cmr errors`` (``error`` has stage, kind, reason, path, study_uid)."""
    if is_clinician(role):
        return {"path": error.path, "study_uid": error.study_uid, "stage": error.stage, "kind": error.kind,
                "reason": error.reason}
    return {"stage": error.stage, "kind": error.kind, "reason": scrub_free_text(error.reason, role)}
