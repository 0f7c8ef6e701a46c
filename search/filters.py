"""Catalog filters of a search, and their parsing from CLI strings (``age>=50``, ``sex=F``, ``views=sax,lge_sax``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from cmrclip.clips import VIEWS
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

    def __post_init__(self) -> None:
        for name in ("institutions", "manufacturers", "field_strengths", "views"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

    def is_empty(self) -> bool:
        return self == Filters()

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
                value = list(value)
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
VALID_FIELDS: tuple[str, ...] = tuple(_FIELDS)
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
            raise _fail(text, f"unknown field {name!r}")
        ops, kind = _FIELDS[name]
        if op not in ops:
            raise _fail(text, f"{name} takes {' '.join(ops)}")
        value = _read(kind, raw, text)
        if kind in ("int", "date"):
            one = dt.timedelta(days=1) if kind == "date" else 1
            low, high = ("age_min", "age_max") if kind == "int" else ("date_from", "date_to")
            if op in (">=", "=", ">"):
                values[low] = value + one if op == ">" else value
            if op in ("<=", "=", "<"):
                values[high] = value - one if op == "<" else value
        else:
            target = {"sex": "sex", "institution": "institutions", "manufacturer": "manufacturers",
                      "field": "field_strengths", "views": "views", "has_report": "has_report"}[name]
            values[target] = value
    return Filters(**values)
