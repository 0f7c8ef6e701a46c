"""Facts in the catalog, full text, fact filters and understood queries, on both databases (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import sessionmaker

from catalog.db import get_engine, session_scope
from catalog.facts import facts_of_studies, fulltext, reports_needing_facts
from catalog.models import Report
from cmrclip.language import FINDINGS, extract_facts, parse_query
from indexer.index.builds import update_index
from indexer.reports import FACTS_VERSION, ReportRow, backfill_facts, import_reports
from search.engine import Engine
from search.fact_table import FactTable
from search.filter_table import FilterTable
from search.filters import Filters, parse_filters
from tests.search.builders import StudySpec, add_studies, store_vectors, tiny_model

REPORTS = [
    "Dilated left ventricle with severely impaired systolic function, LVEF 24 %. No late gadolinium enhancement.",
    "Normal LV size and function (LVEF 62%). No LGE. No pericardial effusion.",
    "Asymmetric septal hypertrophy, maximal wall thickness 19 mm. Patchy mid-wall LGE. Appearances of HCM.",
    "Subendocardial LGE in the LAD territory, consistent with prior infarction. LVEF 41 %.",
    "Moderate pericardial effusion. Dilated LV, ejection fraction of 30 percent.",
    "Concentric LV hypertrophy with inferolateral mid-wall LGE, in keeping with Anderson-Fabry disease.",
    "Prominent trabeculation meeting criteria for LV non-compaction. LVEF: 45 %.",
    "Patchy subepicardial and mid-wall enhancement; cardiac sarcoidosis is the likely diagnosis.",
    "Apical ballooning with preserved basal function: Takotsubo cardiomyopathy. LVEF 38%.",
    "Mildly dilated RV with normal function. Normal LV. No LGE.",
]
QUERIES = [
    "dilated LV with EF around 25 percent", "preserved ejection fraction", "no LGE", "thick septum 19 mm",
    "subendocardial LGE in the inferior wall", "LGE in the LAD territory", "dilated left ventricle and pericardial "
    "effusion", "LVEF below 35", "hypertrophic cardiomyopathy", "no prior infarction", "mid-wall LGE",
]


def _catalog(url: str, with_reports: bool = True) -> list[int]:
    specs = [StudySpec(uid=f"9.{i}", patient=f"p{i}") for i in range(len(REPORTS) + 4)]
    ids = add_studies(url, specs)
    if with_reports:
        db = sessionmaker(bind=get_engine(url), expire_on_commit=False)
        rows = [ReportRow(accession=f"A9.{i}", text=t, report_date=None, where=f"row {i}") for i, t in
                enumerate(REPORTS)]
        import_reports(db, rows, ref="reports.csv")
    return ids


def test_import_stores_facts_and_backfill_reads_old_reports(db_url):
    ids = _catalog(db_url)
    with session_scope(db_url) as session:
        facts = facts_of_studies(session, ids)
    assert set(facts) == set(ids[: len(REPORTS)])
    assert facts[ids[0]]["lvef"] == 24 and facts[ids[0]]["findings"]["lv_dilation"] == "present"
    assert facts[ids[0]]["findings"]["lge_present"] == "absent"
    # a report imported before facts existed (no facts row) is read by the backfill, once
    with session_scope(db_url) as session:
        session.add(Report(accession="old", study_id=ids[-1], text="Severely dilated LV, LVEF 20 %.", impression=""))
    with session_scope(db_url) as session:
        assert [t for _, t in reports_needing_facts(session, FACTS_VERSION)] == ["Severely dilated LV, LVEF 20 %."]
    db = sessionmaker(bind=get_engine(db_url), expire_on_commit=False)
    assert backfill_facts(db) == 1
    assert backfill_facts(db) == 0
    with session_scope(db_url) as session:
        assert facts_of_studies(session, [ids[-1]])[ids[-1]]["lvef"] == 20


def test_fact_table_checks_agree_with_parsed_query(db_url):
    ids = _catalog(db_url)
    with session_scope(db_url) as session:
        table = FactTable.load(session)
    facts = [extract_facts(t) for t in REPORTS]
    pos = table.positions(np.array(ids[: len(REPORTS)], dtype=np.int64))
    for text in QUERIES:
        q = parse_query(text)
        checks = table.checks(q)
        for i, f in enumerate(facts):
            want = [ok for _, ok in q.checks(f)]
            got = [{1: True, -1: False, 0: None}[int(c.outcome[pos[i]])] for c in checks]
            assert got == want, (text, REPORTS[i])


@pytest.mark.parametrize(("text", "expect"), [("Fabry", [5]), ("sarcoid", [7]), ("takotsubo", [8]),
                                              ("non-compaction", [6])])
def test_fulltext_finds_rare_words(db_url, text, expect):
    ids = _catalog(db_url)
    with session_scope(db_url) as session:
        found = [s for s, _ in fulltext(session, text)]
    assert found[: len(expect)] == [ids[i] for i in expect]


def test_fact_filters(db_url):
    ids = _catalog(db_url)
    with session_scope(db_url) as session:
        table = FilterTable.load(session)
    allowed = table.allowed(parse_filters(["lvef<35"]))
    assert allowed.tolist() == [ids[0], ids[4]]
    assert table.allowed(parse_filters(["lge=subendocardial"])).tolist() == [ids[3]]
    assert table.allowed(parse_filters(["lge_present=absent", "lvef>=50"])).tolist() == [ids[1]]
    assert table.allowed(parse_filters(["wall>=15"])).tolist() == [ids[2]]
    # round trip through JSON (cohorts, URLs)
    f = parse_filters(["lvef<35", "lge=mid-wall"])
    assert Filters(**f.to_json()) == f


def _engine(url: str, tmp_path, ids: list[int], directions: np.ndarray | None = None) -> Engine:
    model, meta = tiny_model()
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(ids), 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store_vectors(url, meta.hash, "video", ids, vectors)
    update_index(url, meta.hash, "video", tmp_path / "index")
    engine = Engine(url=url, model=model, meta=meta, checkpoint=meta.hash, refresh_seconds=0.0)
    engine.refresh(force=True)
    if directions is not None:
        engine._directions = directions
    return engine


def test_constraints_rank_reports_first_and_say_why(db_url, tmp_path):
    ids = _catalog(db_url)
    engine = _engine(db_url, tmp_path, ids)
    hits = engine.query("dilated LV with EF around 25 percent", k=5)
    assert hits[0].study_id == ids[0]
    assert hits[0].why.startswith("report: ") and "LVEF 24 %" in hits[0].why.split(";")[0]
    assert "facts" in hits[0].signals and hits[0].facts["lvef"] == 24
    # "preserved EF" finds the reports with LVEF >= 50 first, never one with a low EF in the top
    hits = engine.query("preserved ejection fraction", k=3)
    assert hits[0].study_id == ids[1]
    assert ids[0] not in [h.study_id for h in hits] and ids[4] not in [h.study_id for h in hits]
    # a filter on facts and a query together
    hits = engine.query("pericardial effusion", k=3, filters=parse_filters(["lvef<35"]))
    assert [h.study_id for h in hits] == [ids[4], ids[0]]


def test_rare_word_query_finds_its_report(db_url, tmp_path):
    ids = _catalog(db_url)
    engine = _engine(db_url, tmp_path, ids)
    for text, i in (("Fabry disease", 5), ("sarcoid", 7), ("Takotsubo", 8), ("LV non-compaction", 6)):
        hits = engine.query(text, k=10)
        assert ids[i] in [h.study_id for h in hits[:3]], text


def test_studies_without_report_ranked_by_calibrated_images(db_url, tmp_path):
    """The images decide between studies without a report: the one whose vector points along the finding's
    direction comes first, and its why line gives the image probability."""
    ids = _catalog(db_url)
    direction = np.zeros((len(FINDINGS), 32), np.float32)
    direction[FINDINGS.index("pericardial_effusion"), 0] = 1.0
    engine = _engine(db_url, tmp_path, ids, direction)
    video = engine.indexes["video"]
    unreported = ids[len(REPORTS):]
    scores = video.vectors(np.array(unreported)) @ direction[FINDINGS.index("pericardial_effusion")]
    best = unreported[int(np.argmax(scores))]
    hits = engine.query("pericardial effusion", k=len(ids))
    order = [h.study_id for h in hits]
    assert order[0] == ids[4]  # the report says so
    ranked_unreported = [i for i in order if i in unreported]
    assert ranked_unreported[0] == best
    hit = next(h for h in hits if h.study_id == best)
    assert "images: pericardial effusion 0." in hit.why


def test_fact_filters_survive_url_and_cohort_json():
    from ui.urlstate import SearchState, filters_from_json

    f = parse_filters(["lvef<=35", "lge=subendocardial", "lv_dilation=present"])
    state = SearchState(query="dilated LV", filters=f)
    params = state.to_params()
    assert params["fact"] == ["lvef<=35", "lge=subendocardial", "lv_dilation=present"]
    assert SearchState.from_params(params).filters == f
    assert filters_from_json(f.to_json()) == f
