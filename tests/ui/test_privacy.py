"""Roles: a researcher's pages, URLs and exports carry no patient name, patient ID, accession or study UID."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from catalog import casesets
from catalog.db import session_scope
from search import privacy
from tests.ui.conftest import assert_clean, rendered_text


def _leaks(at, identifiers: list[str]) -> list[str]:
    text = rendered_text(at)
    return [i for i in identifiers if i in text]


def test_researcher_sees_no_identifiers_anywhere(researcher, app, engine_data):
    with session_scope() as session:
        set_id = casesets.create(session, "Researcher view (test)")
        for sid in engine_data.study_ids[:3]:
            casesets.add_study(session, set_id, sid, "note")
    search = app(q="dilated left ventricle")
    pages = {
        "search": search,
        "similar": app(similar=str(engine_data.study_ids[2])),
        "study": app(page="study", study=str(engine_data.study_ids[0])),
        "case sets": app(page="case_sets").sidebar.radio(key="cs_selected").set_value(set_id).run(),
        "status": app(page="status"),
    }
    cohort = app(page="cohort")
    cohort.text_input(key="c_query").input("dilated left ventricle")
    cohort.button(key="FormSubmitter:cohort_form-Score studies").click()
    pages["cohort"] = cohort.run()
    for name, at in pages.items():
        assert_clean(at)
        assert not _leaks(at, engine_data.identifiers), name
    assert "Patient pk0000abcd" in rendered_text(pages["study"])
    assert not pages["study"].link_button, "no PACS link (its URL holds the study UID)"
    assert "90+ y" in rendered_text(pages["study"]), "ages of 90 and over are pooled"
    assert any("Study #" in m.value for m in search.markdown)


def test_clinician_sees_identifiers(clinician, app, engine_data):
    at = app(page="study", study=str(engine_data.study_ids[0]))
    assert_clean(at)
    text = rendered_text(at)
    assert "TESTPATIENT NUMBER00" in text and "PID9000" in text and "ACCX7000" in text


def test_export_record_by_role():
    study = SimpleNamespace(
        study_id=7, study_uid="1.2.3", accession="A1", patient_id="P1", patient_name="DOE^JANE",
        patient_key="k1", patient_age=91, patient_sex="F", study_date=dt.date(2021, 5, 6), institution="H",
        manufacturer="M", field_strength=1.5, views=["sax"],
    )
    assert privacy.export_record(study, "clinician")["patient_age"] == 91
    record = privacy.export_record(study, "researcher")
    assert record["patient_age"] == "90+" and record["study_year"] == 2021
    assert not {"1.2.3", "A1", "P1", "DOE^JANE", "2021-05-06"} & {str(v) for v in record.values()}
