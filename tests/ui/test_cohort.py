"""The cohort page: score, live count under a threshold, plots, CSV export with audit, save and reload."""

from __future__ import annotations

import csv
import io

from catalog import cohorts
from catalog.db import session_scope
from search.filters import Filters
from tests.ui.conftest import assert_clean, audit_rows
from ui import exports
from ui.state import engine_or_reason

SUBMIT = "FormSubmitter:cohort_form-Score studies"


def _score(at, text: str):
    at.text_input(key="c_query").input(text)
    at.button(key=SUBMIT).click()
    return at.run()


def _count(at) -> int:
    return int(next(m.value for m in at.metric if m.label == "Studies in cohort"))


def test_threshold_count_plots_export_and_save(clinician, app, user, engine_data):
    at = _score(app(page="cohort"), "dilated left ventricle")
    assert_clean(at)
    slider = at.slider(key="c_threshold")
    low, high = slider.min, slider.max
    assert _count(at) >= 1
    assert len(at.image) == 2  # score histogram, age/sex figure
    slider.set_value(low).run()
    assert _count(at) == 11  # every study with a report (mode: report)
    slider.set_value(high).run()
    assert _count(at) == 0
    slider.set_value(low).run()
    assert len(audit_rows(user, "search")) == 1, "moving the threshold is not a new search"

    assert not at.get("download_button"), "no file to fetch at /media before the user asks for it"
    at.button(key="c_prepare").click().run()
    assert_clean(at)
    assert len(at.get("download_button")) == 1
    export = audit_rows(user, "export")
    assert export and export[0].n_results == 11 and export[0].query == "dilated left ventricle"

    at.text_input(key="c_save_name").input("Dilated LV (test)")
    at.button(key="FormSubmitter:cohort_save-Save cohort").click().run()
    assert_clean(at)
    with session_scope() as session:
        saved = next(c for c in cohorts.list_cohorts(session) if c.name == "Dilated LV (test)")
    assert saved.checkpoint_hash == engine_data.checkpoint_hash and saved.mode == "report"
    assert len(saved.study_ids) == 11 and saved.owner == user
    assert audit_rows(user, "cohort_save")

    # reload it in a fresh session
    fresh = app(page="cohort")
    fresh.selectbox(key="c_load_pick").set_value(saved.id)
    fresh.button[[b.label for b in fresh.button].index("Load")].click().run()
    assert_clean(fresh)
    assert fresh.text_input(key="c_query").value == "dilated left ventricle"
    assert fresh.slider(key="c_threshold").value == round(saved.threshold, 3)


def test_cohort_filters_and_csv_columns(clinician, app, engine_data):
    at = app(page="cohort")
    at.sidebar.segmented_control(key="c_sex").set_value("F")
    at = _score(at, "normal study")
    assert_clean(at)
    at.slider(key="c_threshold").set_value(at.slider(key="c_threshold").min).run()
    assert _count(at) == 5  # women with a report (odd indexes, the last study has no report)

    engine, _ = engine_or_reason()  # the app's engine, loaded once per process
    hits = engine.scores_for("normal study", mode="report", filters=Filters(sex="F"))
    clinician_rows = list(csv.DictReader(io.StringIO(exports.cohort_csv(hits, "clinician").decode())))
    researcher_rows = list(csv.DictReader(io.StringIO(exports.cohort_csv(hits, "researcher").decode())))
    assert {"study_uid", "accession", "patient_id"} <= set(clinician_rows[0])
    assert {"study_uid", "accession", "patient_id", "patient_name", "study_date"}.isdisjoint(researcher_rows[0])
    assert researcher_rows[0]["patient_key"].startswith("pk")
