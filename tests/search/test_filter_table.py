"""The in-memory filter table gives exactly the allowed studies (checked against the specs), and notices
catalog changes."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
from sqlalchemy import update

from catalog.db import session_scope
from catalog.models import Study, StudyState
from search.filter_table import FilterTable, catalog_signature
from search.filters import Filters
from tests.search.builders import StudySpec, add_studies

SITES = ("Site A", "site_b", "SITE C")
VIEW_SETS = (("sax", "4ch"), ("sax", "2ch", "3ch", "4ch", "lge_sax"), ("4ch",), ())


def _specs(n: int) -> list[StudySpec]:
    rng = np.random.default_rng(3)
    specs = []
    for i in range(n):
        specs.append(StudySpec(
            uid=f"3.{i}", age=None if i % 17 == 0 else int(rng.integers(18, 90)), sex=("F", "M", None)[i % 3],
            institution=SITES[i % 3] if i % 11 else None, manufacturer=("Siemens", "GE", "Philips")[i % 4 % 3],
            field_strength=(1.5, 3.0)[i % 2] if i % 13 else None,
            date=None if i % 19 == 0 else dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000))),
            views=VIEW_SETS[i % 4], patient=f"p{i}", impression="x" if i % 3 == 0 else None,
            state=StudyState.WITHDRAWN if i % 23 == 5 else StudyState.PREPROCESSED,
        ))
    return specs


FILTERS = [
    Filters(),
    Filters(age_min=50),
    Filters(age_max=40, sex="f"),
    Filters(date_from=dt.date(2018, 1, 1), date_to=dt.date(2020, 12, 31)),
    Filters(institutions=("site a", "SITE_B")),
    Filters(manufacturers=("ge",), field_strengths=(3.0,)),
    Filters(views=("sax", "lge_sax")),
    Filters(has_report=True),
    Filters(has_report=False, age_min=30, age_max=70, views=("4ch",)),
]


def _matches(spec: StudySpec, f: Filters) -> bool:
    """The intended semantics, written out: bounds inclusive, text case-insensitive, unknown never matches."""
    def within(value, low, high) -> bool:
        return (low is None and high is None) or (
            value is not None and (low is None or value >= low) and (high is None or value <= high))

    def one_of(value, allowed) -> bool:
        return not allowed or (value is not None and value.lower() in {a.lower() for a in allowed})

    return (
        spec.state != StudyState.WITHDRAWN
        and within(spec.age, f.age_min, f.age_max)
        and within(spec.date, f.date_from, f.date_to)
        and (f.sex is None or spec.sex == f.sex.upper())
        and one_of(spec.institution, f.institutions)
        and one_of(spec.manufacturer, f.manufacturers)
        and (not f.field_strengths or spec.field_strength in f.field_strengths)
        and set(f.views) <= set(spec.views)
        and (f.has_report is None or (spec.impression is not None) == f.has_report)
    )


def test_allowed_ids_follow_the_filter_semantics(db_url):
    specs = _specs(120)
    ids = add_studies(db_url, specs)
    with session_scope(db_url) as session:
        table = FilterTable.load(session)
    for filters in FILTERS:
        expected = [i for i, spec in zip(ids, specs, strict=True) if _matches(spec, filters)]
        assert table.allowed(filters).tolist() == sorted(expected), filters
        assert 0 < len(expected) < len(ids)
    withdrawn = [i for i, spec in zip(ids, specs, strict=True) if spec.state == StudyState.WITHDRAWN]
    assert table.withdrawn_ids().tolist() == sorted(withdrawn) and withdrawn


def test_signature_changes_with_the_catalog(db_url):
    ids = add_studies(db_url, _specs(10))
    signatures = []
    with session_scope(db_url) as session:
        signatures.append(catalog_signature(session))
    add_studies(db_url, [StudySpec(uid="3.new", patient="q")])
    with session_scope(db_url) as session:
        signatures.append(catalog_signature(session))
        session.execute(update(Study).where(Study.id == ids[0]).values(state=StudyState.WITHDRAWN,
                                                                        updated_at=dt.datetime(2099, 1, 1)))
    with session_scope(db_url) as session:
        signatures.append(catalog_signature(session))
        table = FilterTable.load(session)
    assert all(a != b for a, b in itertools.pairwise(signatures))
    assert ids[0] in table.withdrawn_ids().tolist()
