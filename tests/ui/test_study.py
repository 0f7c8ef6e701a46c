"""The study page: playable views, frame slider, report, metadata, neighbours, PACS link, missing clips."""

from __future__ import annotations

from tests.ui.conftest import assert_clean, audit_rows


def test_study_page_plays_every_view(clinician, app, user, engine_data):
    study = engine_data.study_ids[0]
    at = app(page="study", study=str(study))
    assert_clean(at)
    assert at.title[0].value.startswith(f"Study #{study}")
    labels = [t.label for t in at.tabs]
    assert {"4CH", "2CH", "3CH", "SAX base", "SAX mid", "SAX apex", "LGE SAX", "LGE LAX"} <= set(labels)
    assert len(at.image) >= 2 * len(labels)  # a playing GIF and a still frame per view (+ neighbour previews)
    assert any("IMPRESSION" in m.value for m in at.markdown), "the full report is shown"
    assert at.link_button and "1.2.826.0.1.3680043.99.1000" in at.link_button[0].proto.url  # PACS viewer
    assert any(s.value == "Nearest neighbours" for s in at.subheader)
    rows = audit_rows(user, "view_study")
    assert len(rows) == 1 and rows[0].detail == f"study #{study}"
    at.slider(key="frame_4CH").set_value(3).run()
    assert len(audit_rows(user, "view_study")) == 1, "a rerun is not a new view"
    at.switch_page("app_pages/search.py").run()
    at.query_params["study"] = str(study)
    at.switch_page("app_pages/study.py").run()
    assert_clean(at)
    assert len(audit_rows(user, "view_study")) == 2, "coming back to the study is a new view"


def test_frame_slider_steps_through_frames(clinician, app, engine_data):
    at = app(page="study", study=str(engine_data.study_ids[0]))
    slider = at.slider(key="frame_4CH")
    assert slider.value == 1
    slider.set_value(5).run()
    assert_clean(at)
    assert any(img.proto.imgs[0].caption == "4CH · frame 5 of 16" for img in at.image if img.proto.imgs)


def test_study_with_missing_clips_still_shows_report(clinician, app, engine_data):
    at = app(page="study", study=str(engine_data.missing_clip_study))
    assert_clean(at)
    assert any("cines of this study are not available" in w.value for w in at.warning)
    assert not at.tabs
    assert any("Impression." in m.value for m in at.markdown)


def test_study_without_report(clinician, app, engine_data):
    at = app(page="study", study=str(engine_data.no_report_study))
    assert_clean(at)
    assert any("No report on file" in c.value for c in at.caption)


def test_no_or_unknown_study(clinician, app):
    at = app(page="study")
    assert_clean(at)
    assert "Open a study from the search results" in at.info[0].value
    at = app(page="study", study="99999")
    assert_clean(at)
    assert "not in the catalog" in at.warning[0].value


def test_study_page_shows_the_model_reading_beside_the_report(clinician, app, engine_data):
    at = app(page="study", study=str(engine_data.study_ids[0]))
    assert_clean(at)
    assert any(s.value == "Model reading" for s in at.subheader)
    table = next(d for d in at.dataframe if list(d.value.columns)[:3] == ["finding", "images", "report"])
    assert len(table.value) == 8 and all(0.0 <= float(p) <= 1.0 for p in table.value["images"])


def test_report_qa_page_lists_or_says_none_and_is_audited(clinician, app, user):
    at = app(page="qa")
    assert_clean(at)
    assert at.title[0].value == "Report QA"
    assert at.info or any("confidence" in m.value for m in at.markdown)
    assert audit_rows(user, "qa")
