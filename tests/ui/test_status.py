"""The status page: model and index, studies by state, ingest errors by kind, database, audit (clinicians)."""

from __future__ import annotations

from tests.ui.conftest import assert_clean


def test_status_page_for_clinician(clinician, app, engine_data):
    app(q="normal study")  # something in the audit log
    at = app(page="status")
    assert_clean(at)
    assert at.metric[0].value == engine_data.checkpoint_hash
    assert {m.label: m.value for m in at.metric}["Preprocessed"] == "12"
    assert sorted(e.label for e in at.expander) == ["not dicom · 1", "too few frames · 1"]
    assert "catalog.sqlite" in at.code[0].value
    assert any(s.value == "Latest audit entries" for s in at.subheader)


def test_status_page_for_researcher_has_no_audit(researcher, app):
    at = app(page="status")
    assert_clean(at)
    assert not any(s.value == "Latest audit entries" for s in at.subheader)
