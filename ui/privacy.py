"""What each role may see. Every identifier that reaches a page, an export or a URL goes through here.

A clinician sees patient name, patient ID, accession number and study UID. A researcher sees none of them, nor
birth dates or exact study dates (HIPAA counts dates of service as identifiers): only the pseudonymous patient
key, the catalog's study number, the study year and the age (90 and over pooled, as HIPAA's Safe Harbor asks).
URLs carry only study numbers, for both roles.

The functions take any object with the catalog's field names (``search`` hits and ``catalog.ui_queries``
details share them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def is_clinician(role: str) -> bool:
    return role == "clinician"


def study_number(obj: Any) -> str:
    return f"Study #{obj.study_id}"


def date_text(value: dt.date | None, role: str) -> str:
    if value is None:
        return "date unknown"
    return value.isoformat() if is_clinician(role) else str(value.year)


def age_text(age: int | None, role: str) -> str:
    if age is None:
        return "age ?"
    return "90+ y" if age >= 90 and not is_clinician(role) else f"{age} y"


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
    age = obj.patient_age
    record.update(
        patient_age=("90+" if age is not None and age >= 90 and not is_clinician(role) else age),
        patient_sex=obj.patient_sex,
        institution=obj.institution,
        manufacturer=obj.manufacturer,
        field_strength=obj.field_strength,
        views=" ".join(obj.views or []),
    )
    return record
