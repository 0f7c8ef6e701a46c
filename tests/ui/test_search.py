"""The search page: text search, filters, URL state, empty results, similar cases, add to case set, no index."""

from __future__ import annotations

import re

from catalog import casesets
from catalog.db import session_scope
from tests.ui.conftest import assert_clean, audit_rows

SUBMIT = "FormSubmitter:search_form-Search"


def _search(at, text: str):
    at.text_input(key="s_query").input(text)
    at.button(key=SUBMIT).click()
    return at.run()


def _cards(at) -> list[str]:
    """The "date · age · sex · Study #N" line of each result card."""
    return [m.value for m in at.markdown if "Study #" in m.value and " y · " in m.value]


def test_start_page_explains_and_does_not_search(clinician, app, user):
    at = app()
    assert_clean(at)
    assert at.info and "Type what you are looking for" in at.info[0].value
    assert not audit_rows(user, "search")


def test_text_search_shows_cards_and_url_and_audit(clinician, app, user):
    at = _search(app(), "dilated left ventricle")
    assert_clean(at)
    assert len(_cards(at)) == 12  # default k; the fixture has 12 studies
    assert at.query_params["q"] == "dilated left ventricle"
    assert any(":orange-background[" in m.value for m in at.markdown), "query terms are highlighted"
    assert len(at.image) >= 10  # previews; one study has lost its clip file
    assert any("No cine preview" in c.value for c in at.caption)
    rows = audit_rows(user, "search")
    assert len(rows) == 1 and rows[0].query == "dilated left ventricle" and rows[0].n_results == 12
    at.run()  # a rerun (any click) is not a new search
    assert len(audit_rows(user, "search")) == 1


def test_filters_in_sidebar_restrict_results_and_go_to_url(clinician, app, user):
    at = _search(app(), "normal study")
    at.sidebar.segmented_control(key="s_sex").set_value("F")
    at.sidebar.multiselect(key="s_views").set_value(["3ch"])
    at.run()
    assert_clean(at)
    cards = _cards(at)
    assert cards and all(" · F · " in c for c in cards)
    assert at.query_params["sex"] == "F" and at.query_params["views"] == "3ch"
    last = audit_rows(user, "search")[0]
    assert last.filters == {"sex": "F", "views": ["3ch"]}
    assert last.n_results == len(cards)


def test_shared_url_restores_search_and_filters(clinician, app):
    at = app(q="septal hypertrophy", age_min="50", mode="report", k="6")
    assert_clean(at)
    assert at.text_input(key="s_query").value == "septal hypertrophy"
    assert at.segmented_control(key="s_mode").value == "report"
    assert at.sidebar.slider(key="s_age").value[0] == 50
    ages = [int(re.search(r"· (\d+) y ·", c).group(1)) for c in _cards(at)]
    assert ages and len(ages) <= 6 and min(ages) >= 50


def test_empty_result_set_says_so(clinician, app):
    at = app(q="dilated left ventricle", age_min="93", sex="F")  # the only 93-year-old is male
    assert_clean(at)
    assert not _cards(at)
    assert any("No study matches" in i.value for i in at.info)


def test_similar_cases_button(clinician, app, user, engine_data):
    at = _search(app(), "dilated left ventricle")
    first = next(b for b in at.button if (b.key or "").startswith("sim_"))
    study_id = first.key.removeprefix("sim_")
    first.click()
    at.run()
    assert_clean(at)
    assert any(f"similar to Study #{study_id}" in s.value for s in at.subheader)
    assert at.query_params["similar"] == study_id and "q" not in at.query_params
    assert f"Study #{study_id}" not in " ".join(_cards(at)), "the study itself is not its own neighbour"
    assert audit_rows(user, "similar")


def test_add_to_new_case_set_from_a_card(clinician, app, user):
    at = _search(app(), "pericardial effusion")
    sid = next(b.key for b in at.button if (b.key or "").startswith("sim_")).removeprefix("sim_")
    at.text_input(key=f"addnew_{sid}").input("Effusions (search test)")
    at.text_input(key=f"addnote_{sid}").input("small effusion")
    at.button(key=f"FormSubmitter:addform_{sid}-Add").click()
    at.run()
    assert_clean(at)
    with session_scope() as session:
        info = next(c for c in casesets.list_case_sets(session) if c.name == "Effusions (search test)")
        entries = casesets.entries(session, info.id)
    assert [(e.study_id, e.note) for e in entries] == [(int(sid), "small effusion")]
    assert info.owner == user


def test_without_index_the_page_names_the_command(app, tmp_path, monkeypatch):
    from catalog.settings import get_settings
    from migrations.apply import upgrade

    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    upgrade(url)
    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CMR_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        at = app(q="dilated left ventricle")
        assert_clean(at)
        assert at.warning and "`cmr index`" in at.warning[0].value
        status = app(page="status")
        assert_clean(status)
        assert "`cmr index`" in status.warning[0].value
    finally:
        get_settings.cache_clear()


def test_thumbs_refine_the_search_by_example(clinician, app, user):
    at = _search(app(), "dilated left ventricle")
    ups = [b for b in at.button if (b.key or "").startswith("up_")]
    downs = [b for b in at.button if (b.key or "").startswith("down_")]
    assert len(ups) == len(downs) == 12
    liked = ups[0].key.removeprefix("up_")
    ups[0].click()
    at.run()
    disliked = next(b for b in at.button if (b.key or "").startswith("down_")).key.removeprefix("down_")
    at.button(key=f"down_{disliked}").click()
    at.run()
    assert_clean(at)
    listed = {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}
    assert listed["like"] == [liked] and listed["unlike"] == [disliked]
    assert any(f"like #{liked}; unlike #{disliked}" in m.value for m in at.markdown)
    shown = " ".join(_cards(at))
    assert f"Study #{liked} " not in shown + " " and f"Study #{disliked} " not in shown + " ", "examples not returned"
    assert audit_rows(user, "search")[0].query == f"dilated left ventricle · like #{liked}; unlike #{disliked}"
    at.button(key=next(b.key for b in at.button if "Clear examples" in (b.label or ""))).click()
    at.run()
    assert "like" not in at.query_params and len(_cards(at)) == 12


def test_examples_from_the_url_alone(clinician, app, engine_data):
    at = app(like=[str(engine_data.study_ids[0]), str(engine_data.study_ids[1])])
    assert_clean(at)
    assert any("Search by example" in m.value for m in at.markdown)
    assert len(_cards(at)) == 10  # 12 studies, the 2 examples left out
    bad = app(like="999999")
    assert any("#999999" in w.value for w in bad.warning)
