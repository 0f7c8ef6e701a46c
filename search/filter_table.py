"""An in-memory copy of the catalog columns searches filter on, so an allow-list costs numpy, not SQL.

Asking the catalog for the allowed ids on every filtered query returns up to N ids over the wire: ~190 ms at 50 %
of 100k studies (bench/RESULTS.md). Held as arrays, the same allow-list takes a few ms at 1M. The table is
reloaded when the catalog's signature changes (study count, largest id, latest update, linked reports), which
``Engine`` checks on its refresh cadence. It never decides alone what a user may see: the catalog join of the hits
drops studies withdrawn since the last load, so a withdrawal still takes effect at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.facts import facts_signature
from catalog.models import Report, Study, StudyState
from cmrclip.clips import VIEWS
from search.fact_table import FactTable
from search.filters import Filters

_NO_DATE = np.datetime64("NaT", "D")


def catalog_signature(session: Session) -> tuple[Any, ...]:
    """Changes whenever a study is added, deleted, updated (state, demographics) or a report is linked."""
    studies = session.execute(select(func.count(Study.id), func.max(Study.id), func.max(Study.updated_at))).one()
    reports = session.scalar(select(func.count(Report.id)).where(Report.study_id.is_not(None)))
    return (*studies, reports, *facts_signature(session))


@dataclass(frozen=True)
class FilterTable:
    signature: tuple[Any, ...]
    ids: np.ndarray  # int64, sorted
    age: np.ndarray  # float64, NaN = unknown
    sex: np.ndarray  # "<U1", "" = unknown
    date: np.ndarray  # datetime64[D], NaT = unknown
    institution: np.ndarray  # lower-cased, "" = unknown
    manufacturer: np.ndarray
    field_strength: np.ndarray  # float64, NaN = unknown
    views: np.ndarray  # uint32 bit mask over cmrclip.clips.VIEWS
    has_report: np.ndarray  # bool
    withdrawn: np.ndarray  # bool
    facts: FactTable = field(default_factory=FactTable.empty)  # the reports' facts (filters, query constraints)

    @classmethod
    def load(cls, session: Session) -> FilterTable:
        signature = catalog_signature(session)
        linked = select(Report.study_id).where(Report.study_id.is_not(None)).scalar_subquery()
        rows = session.execute(
            select(Study.id, Study.patient_age, Study.patient_sex, Study.study_date, Study.institution,
                   Study.manufacturer, Study.field_strength, Study.views, Study.state, Study.id.in_(linked))
            .order_by(Study.id)
        ).all()
        bit = {view: 1 << i for i, view in enumerate(VIEWS)}
        cols = list(zip(*rows, strict=True)) if rows else [()] * 10
        return cls(
            signature=signature,
            ids=np.array(cols[0], dtype=np.int64),
            age=np.array([np.nan if a is None else a for a in cols[1]], dtype=np.float64),
            sex=np.array([(s or "").upper() for s in cols[2]], dtype="<U1"),
            date=np.array([_NO_DATE if d is None else np.datetime64(d, "D") for d in cols[3]], dtype="datetime64[D]"),
            institution=np.array([(s or "").lower() for s in cols[4]], dtype=object),
            manufacturer=np.array([(s or "").lower() for s in cols[5]], dtype=object),
            field_strength=np.array([np.nan if f is None else f for f in cols[6]], dtype=np.float64),
            views=np.array([sum(bit.get(v, 0) for v in set(vs or ())) for vs in cols[7]], dtype=np.uint32),
            has_report=np.array(cols[9], dtype=bool),
            withdrawn=np.array([s == StudyState.WITHDRAWN for s in cols[8]], dtype=bool),
            facts=FactTable.load(session),
        )

    def withdrawn_ids(self) -> np.ndarray:
        return self.ids[self.withdrawn]

    @cached_property
    def live_ids(self) -> np.ndarray:
        """Sorted ids of the studies not withdrawn (computed once per load)."""
        return self.ids[~self.withdrawn]

    def allowed(self, filters: Filters) -> np.ndarray:
        """Sorted int64 ids of non-withdrawn studies matching every condition (bounds inclusive, text fields
        case-insensitive, an unknown value never matches a condition on it, views: all of them)."""
        keep = ~self.withdrawn
        with np.errstate(invalid="ignore"):  # NaN compares False: unknown values never match a bound
            if filters.age_min is not None:
                keep &= self.age >= filters.age_min
            if filters.age_max is not None:
                keep &= self.age <= filters.age_max
            if filters.field_strengths:
                keep &= np.isin(self.field_strength, np.array(filters.field_strengths, dtype=np.float64))
        if filters.sex is not None:
            keep &= self.sex == filters.sex.upper()
        if filters.date_from is not None:
            keep &= self.date >= _day(filters.date_from)
        if filters.date_to is not None:
            keep &= self.date <= _day(filters.date_to)
        if filters.institutions:
            keep &= np.isin(self.institution, [v.lower() for v in filters.institutions])
        if filters.manufacturers:
            keep &= np.isin(self.manufacturer, [v.lower() for v in filters.manufacturers])
        if filters.views:
            mask = np.uint32(sum(1 << VIEWS.index(v) for v in set(filters.views)))
            keep &= (self.views & mask) == mask
        if filters.has_report is not None:
            keep &= self.has_report == filters.has_report
        if filters.facts:
            keep &= np.isin(self.ids, self.facts.matching(filters.facts), assume_unique=True)
        return self.ids[keep]


def _day(value: dt.date) -> np.datetime64:
    return np.datetime64(value, "D")
