"""Catalog filters of a search, and their parsing from CLI strings (``age>=50``, ``sex=F``, ``views=sax,lge_sax``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from cmrclip.clips import MODEL_VIEWS as MODEL_VIEWS  # the views a filter may name, re-exported for the UI
from cmrclip.clips import VIEWS as VIEWS
from search.errors import UnknownFilter


@dataclass(frozen=True)
class Filters:
    """Conditions on catalog fields; every bound is inclusive, every list means "any of" (views: "all of")."""

    age_min: int | None = None
    age_max: int | None = None
    sex: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    institutions: tuple[str, ...] = field(default_factory=tuple)
    manufacturers: tuple[str, ...] = field(default_factory=tuple)
    field_strengths: tuple[float, ...] = field(default_factory=tuple)
    # views the study must have, all of them
    views: tuple[str, ...] = field(default_factory=tuple)
    has_report: bool | None = None
    # conditions on the report's facts, all of them: ("lvef", "<", 35.0), ("lge", "=", "subendocardial"),
    # ("lv_dilation", "=", "present"), ("diagnosis", "=", "fabry"), ("territory", "=", "LAD"); a study without a
    # report, or whose report does not state the fact, never matches
    facts: tuple[tuple[str, str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("institutions", "manufacturers", "field_strengths", "views"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "facts", tuple(tuple(c) for c in self.facts))  # JSON lists back to tuples

    def is_empty(self) -> bool:
        return self == Filters()

    def fact_texts(self) -> list[str]:
        """The fact conditions as the CLI writes them: ``["lvef<35", "lge=subendocardial"]``."""
        names = {v: k for k, v in FACT_NUMBERS.items() if k in ("lvef", "rvef", "lvedvi", "rvedvi", "lv_mass_index",
                                                                 "wall")}
        return [f"{names.get(n, n)}{op}{v:g}" if isinstance(v, float) else f"{n}{op}{v}" for n, op, v in self.facts]

    def to_json(self) -> dict[str, Any]:
        """Only the set conditions, JSON-ready (dates as ISO strings), e.g. for the audit log or a cohort."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[f.name] = value
        return out


# CLI field name -> (operators allowed, how to read the value)
_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "age": ((">=", "<=", ">", "<", "="), "int"),
    "sex": (("=",), "sex"),
    "date": ((">=", "<=", ">", "<", "="), "date"),
    "institution": (("=",), "list"),
    "manufacturer": (("=",), "list"),
    "field": (("=",), "floats"),
    "views": (("=",), "views"),
    "has_report": (("=",), "bool"),
}
# Facts of the report (catalog.facts): numbers with comparisons, LGE pattern, findings, diagnosis, territory.
FACT_NUMBERS = {"lvef": "lvef", "rvef": "rvef", "lvedv": "lvedv", "lvedvi": "lvedvi", "rvedv": "rvedv",
                "rvedvi": "rvedvi", "lv_mass": "lv_mass", "lv_mass_index": "lv_mass_index", "lvmi": "lv_mass_index",
                "wall": "max_wall_thickness_mm", "max_wall_thickness_mm": "max_wall_thickness_mm"}
FINDING_STATES = ("present", "absent", "uncertain")
VALID_FIELDS: tuple[str, ...] = (*_FIELDS, "lvef", "rvef", "lvedvi", "rvedvi", "lv_mass_index", "wall", "lge",
                                 "diagnosis", "territory", "<finding>")
_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|=|>|<)\s*(.*?)\s*$")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}


def _fail(text: str, why: str) -> UnknownFilter:
    return UnknownFilter(f"bad filter {text!r}: {why}; valid fields: {', '.join(VALID_FIELDS)}")


def _read(kind: str, raw: str, text: str) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "date":
            return dt.date.fromisoformat(raw)
        if kind == "floats":
            return tuple(float(v) for v in raw.split(","))
    except ValueError as exc:
        raise _fail(text, f"cannot read {raw!r}") from exc
    if kind == "sex":
        if raw.upper() not in ("F", "M", "O"):
            raise _fail(text, "sex is F, M or O")
        return raw.upper()
    if kind == "bool":
        if raw.lower() not in _TRUE | _FALSE:
            raise _fail(text, "has_report is true or false")
        return raw.lower() in _TRUE
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise _fail(text, "no value")
    if kind == "views":
        unknown = [v for v in values if v not in VIEWS]
        if unknown:
            raise _fail(text, f"unknown view(s) {', '.join(unknown)} (views: {', '.join(VIEWS)})")
    return values


def parse_filters(texts: Iterable[str]) -> Filters:
    """``["age>=50", "sex=F"]`` -> ``Filters``; an unknown field or unreadable value raises ``UnknownFilter``."""
    values: dict[str, Any] = {}
    for text in texts:
        match = _PATTERN.match(text)
        if not match:
            raise _fail(text, "expected FIELD OP VALUE, e.g. age>=50")
        name, op, raw = match.group(1).lower(), match.group(2), match.group(3)
        if name not in _FIELDS:
            values.setdefault("facts", []).append(_fact_condition(name, op, raw, text))
            continue
        if name not in _FIELDS:
            raise _fail(text, f"unknown field {name!r}")
        ops, kind = _FIELDS[name]
        if op not in ops:
            raise _fail(text, f"{name} takes {' '.join(ops)}")
        value = _read(kind, raw, text)
        if kind in ("int", "date"):
            one = dt.timedelta(days=1) if kind == "date" else 1
            low, high = ("age_min", "age_max") if kind == "int" else ("date_from", "date_to")
            try:
                if op in (">=", "=", ">"):
                    values[low] = value + one if op == ">" else value
                if op in ("<=", "=", "<"):
                    values[high] = value - one if op == "<" else value
            except OverflowError as exc:  # date>9999-12-31, date<0001-01-01
                raise _fail(text, f"no {name} is {op} {raw}") from exc
        else:
            target = {"sex": "sex", "institution": "institutions", "manufacturer": "manufacturers",
                      "field": "field_strengths", "views": "views", "has_report": "has_report"}[name]
            values[target] = value
    return Filters(**values)


def _fact_condition(name: str, op: str, raw: str, text: str) -> tuple[str, str, Any]:
    from cmrclip.language import FINDINGS, LGE_PATTERNS
    from cmrclip.language.lexicon import DIAGNOSES, VESSELS, WALLS

    if name in FACT_NUMBERS:
        try:
            return (FACT_NUMBERS[name], op, float(raw.rstrip("%").strip()))
        except ValueError as exc:
            raise _fail(text, f"cannot read {raw!r} as a number") from exc
    choices = {"lge": LGE_PATTERNS, "diagnosis": tuple(DIAGNOSES), "territory": (*WALLS, *VESSELS),
               **{f: FINDING_STATES for f in FINDINGS}}.get(name)
    if choices is None:
        raise _fail(text, f"unknown field {name!r} (findings: {', '.join(FINDINGS)})")
    if op != "=":
        raise _fail(text, f"{name} takes =")
    value = {c.lower(): c for c in choices}.get(raw.strip().lower().replace("midwall", "mid-wall"))
    if value is None:
        raise _fail(text, f"{name} is one of {', '.join(choices)}")
    return (name, "=", value)
