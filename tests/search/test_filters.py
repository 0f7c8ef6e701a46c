"""Parsing CLI filter strings."""

from __future__ import annotations

import datetime as dt

import pytest

from search.errors import UnknownFilter
from search.filters import VALID_FIELDS, Filters, parse_filters


def test_parse_every_field():
    f = parse_filters([
        "age>=50", "age<80", "sex=f", "views=sax,lge_sax", "date>=2023-01-01", "manufacturer=Siemens",
        "field=3.0", "has_report=true", "institution=site_a,site_b",
    ])
    assert f == Filters(
        age_min=50, age_max=79, sex="F", views=("sax", "lge_sax"), date_from=dt.date(2023, 1, 1),
        manufacturers=("Siemens",), field_strengths=(3.0,), has_report=True, institutions=("site_a", "site_b"),
    )
    assert parse_filters(["age=40"]) == Filters(age_min=40, age_max=40)
    assert parse_filters([]).is_empty()
    assert f.to_json()["date_from"] == "2023-01-01"


@pytest.mark.parametrize("text", ["colour=red", "age>=old", "sex=X", "views=sax,axial", "sex>=F", "nonsense",
                                  "date>=yesterday", "has_report=maybe"])
def test_bad_filters_name_the_valid_fields(text):
    with pytest.raises(UnknownFilter) as err:
        parse_filters([text])
    assert all(name in str(err.value) for name in VALID_FIELDS)
