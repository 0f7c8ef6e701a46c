"""A search (query, mode, k, filters, example studies) as URL query parameters, so a search is a link that can be
shared.

Parsing is lenient: a hand-edited or truncated URL gives the default for what it cannot read, never an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.filters import VIEWS, Filters
from search.fusion import DEFAULT_MODE

MODES = ("video", "both", "report")
K_CHOICES = (6, 12, 24, 48)
DEFAULT_K = 12
SEXES = ("F", "M", "O")


def filters_from_json(data: Mapping[str, Any]) -> Filters:
    """The inverse of ``Filters.to_json``, skipping what it cannot read (saved cohorts, URLs)."""
    return Filters(
        age_min=_int(data.get("age_min")),
        age_max=_int(data.get("age_max")),
        sex=data.get("sex") if data.get("sex") in SEXES else None,
        date_from=_date(data.get("date_from")),
        date_to=_date(data.get("date_to")),
        institutions=tuple(map(str, data.get("institutions") or ())),
        manufacturers=tuple(map(str, data.get("manufacturers") or ())),
        field_strengths=tuple(f for f in (_float(v) for v in data.get("field_strengths") or ()) if f is not None),
        views=tuple(v for v in map(str, data.get("views") or ()) if v in VIEWS),
        has_report=True if data.get("has_report") is True else None,
        facts=_facts(data.get("facts")),
    )


def _facts(value: Any) -> tuple[tuple[str, str, Any], ...]:
    """Fact conditions from JSON lists (cohorts) or CLI-style texts (URLs, ``fact=lvef<35``); unreadable ones are
    skipped."""
    from search.errors import UnknownFilter
    from search.filters import parse_filters

    out: list[tuple[str, str, Any]] = []
    for item in value or ():
        text = item if isinstance(item, str) else (
            f"{item[0]}{item[1]}{item[2]}" if isinstance(item, list | tuple) and len(item) == 3 else None)
        if text is None:
            continue
        try:
            out.extend(parse_filters([text]).facts)
        except UnknownFilter:
            continue
    return tuple(out)


@dataclass(frozen=True)
class SearchState:
    query: str = ""
    mode: str = DEFAULT_MODE
    k: int = DEFAULT_K
    # study number whose nearest neighbours are shown instead of a text search
    similar_to: int | None = None
    filters: Filters = field(default_factory=Filters)
    # query by example: study numbers marked "more like this" / "less like this" (thumbs, or a case set)
    like: tuple[int, ...] = ()
    unlike: tuple[int, ...] = ()

    def to_params(self) -> dict[str, str | list[str]]:
        params: dict[str, str | list[str]] = {}
        if self.similar_to is not None:
            params["similar"] = str(self.similar_to)
        else:
            if self.query:
                params["q"] = self.query
            if self.like:
                params["like"] = [str(i) for i in self.like]
            if self.unlike:
                params["unlike"] = [str(i) for i in self.unlike]
        if self.mode != DEFAULT_MODE:
            params["mode"] = self.mode
        if self.k != DEFAULT_K:
            params["k"] = str(self.k)
        for name, value in self.filters.to_json().items():
            if name == "facts":
                params["fact"] = self.filters.fact_texts()
                continue
            params[name] = [str(v) for v in value] if isinstance(value, list) else str(value).lower() if isinstance(
                value, bool) else str(value)
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str | Sequence[str]]) -> SearchState:
        """From ``{name: value or [values]}`` (``st.query_params`` gives the last value; pass lists for repeats)."""

        def one(name: str) -> str | None:
            value = params.get(name)
            if isinstance(value, str) or value is None:
                return value
            return value[-1] if value else None

        def many(name: str) -> list[str]:
            value = params.get(name)
            return [value] if isinstance(value, str) else list(value or [])

        data: dict[str, Any] = {name: one(name) for name in ("age_min", "age_max", "sex", "date_from", "date_to")}
        data.update({name: many(name) for name in ("institutions", "manufacturers", "field_strengths", "views")})
        data["has_report"] = one("has_report") == "true" or None
        data["facts"] = many("fact")
        k = _int(one("k"))
        mode = one("mode")
        return cls(
            query=(one("q") or "").strip(),
            mode=mode if mode in MODES else DEFAULT_MODE,
            k=k if k in K_CHOICES else DEFAULT_K,
            similar_to=_int(one("similar")),
            filters=filters_from_json(data),
            like=(like := _ids(many("like"))),
            unlike=tuple(i for i in _ids(many("unlike")) if i not in like),
        )


def _ids(values: Sequence[str]) -> tuple[int, ...]:
    """Study numbers, in order, each once; unreadable ones skipped."""
    out = [i for i in (_int(v) for v in values) if i is not None and i > 0]
    return tuple(dict.fromkeys(out))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
