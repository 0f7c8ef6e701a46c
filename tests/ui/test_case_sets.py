"""The case sets page: create, add from a study page, note, reorder, remove, rename, delete, export."""

from __future__ import annotations

import csv
import io
import zipfile

from catalog import casesets, studies
from catalog.db import session_scope
from search.previews import card_preview
from tests.ui.conftest import assert_clean, audit_rows
from ui import exports


def _entries(name: str) -> list[casesets.CaseSetEntry]:
    with session_scope() as session:
        info = next(c for c in casesets.list_case_sets(session) if c.name == name)
        return casesets.entries(session, info.id)


def _select(at, name: str):
    return at.sidebar.radio(key="cs_selected").set_value(_id_of(name)).run()


def _id_of(name: str) -> int:
    with session_scope() as session:
        return next(c.id for c in casesets.list_case_sets(session) if c.name == name)


def test_create_fill_reorder_note_and_export(clinician, app, user, engine_data):
    a, b, c = engine_data.study_ids[3], engine_data.study_ids[1], engine_data.study_ids[5]
    at = app(page="case_sets")
    at.sidebar.text_input(key="cs_new_name").input("HCM teaching (test)")
    at.sidebar.button(key="FormSubmitter:cs_create-Create").click()
    at.run()
    assert_clean(at)
    assert at.subheader[0].value == "HCM teaching (test)"

    # add three studies from their study pages
    for sid in (a, b, c):
        page = app(page="study", study=str(sid))
        key = f"study_{sid}"
        page.selectbox(key=f"addset_{key}").set_value(_id_of("HCM teaching (test)"))
        page.button(key=f"FormSubmitter:addform_{key}-Add").click()
        page.run()
        assert_clean(page)
    assert [e.study_id for e in _entries("HCM teaching (test)")] == [a, b, c]

    at = _select(app(page="case_sets"), "HCM teaching (test)")
    assert_clean(at)
    at.button(key=f"cs_down_{a}").click().run()  # a moves below b
    at.button(key=f"cs_up_{c}").click().run()  # c moves above a
    assert [e.study_id for e in _entries("HCM teaching (test)")] == [b, c, a]
    at.text_area(key=f"cs_note_{_id_of('HCM teaching (test)')}_{c}").input("look at the septum").run()
    assert_clean(at)
    assert {e.study_id: e.note for e in _entries("HCM teaching (test)")}[c] == "look at the septum"

    # query by example from the set: a link to the search with every study as a positive example
    links = [str(x.proto) for x in at.get("page_link")]
    more = next(x for x in links if "Find more like these" in x)
    assert all(f"like={sid}" in more for sid in (a, b, c)), more

    # exports: no file exists (nor is served at /media) before the user asks; asking audits, then offers it
    assert not at.get("download_button") and not audit_rows(user, "export")
    at.button(key="cs_prepare_CSV").click().run()
    assert_clean(at)
    assert audit_rows(user, "export")[0].detail.startswith("case set CSV")
    assert len(at.get("download_button")) == 1, "the CSV is offered once prepared (and audited)"
    at.button(key="cs_prepare_ZIP").click().run()
    assert [r.detail[:12] for r in audit_rows(user, "export")] == ["case set ZIP", "case set CSV"]
    assert len(at.get("download_button")) == 2
    entries = _entries("HCM teaching (test)")
    with session_scope() as session:
        details = {d.study_id: d for d in studies.study_details(session, [e.study_id for e in entries])}
    cases = [(e, details[e.study_id]) for e in entries]
    rows = list(csv.DictReader(io.StringIO(exports.case_set_csv(cases, "clinician").decode())))
    assert [int(r["study_number"]) for r in rows] == [b, c, a]
    assert rows[1]["note"] == "look at the septum" and rows[0]["accession"].startswith("ACCX")
    data = exports.case_set_zip("HCM teaching (test)", cases, "clinician",
                                lambda d: card_preview(d.clip_path, d.study_uid, engine_data.data_dir / "previews"))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert {"index.html", "cases.csv", f"cases/001_study-{b}.html", f"cases/002_study-{c}.html",
            f"cases/003_study-{a}.html", f"previews/002_study-{c}.gif", f"previews/003_study-{a}.gif"} <= set(names)
    assert f"previews/001_study-{b}.gif" not in names  # b is the study whose clip file is missing
    page = zipfile.ZipFile(io.BytesIO(data)).read(f"cases/002_study-{c}.html").decode()
    assert "look at the septum" in page and "../previews/002_study-" in page

    # remove, rename, delete
    at.button(key=f"cs_rm_{b}").click().run()
    assert [e.study_id for e in _entries("HCM teaching (test)")] == [c, a]
    set_id = _id_of("HCM teaching (test)")
    at.text_input(key=f"cs_rename_{set_id}").input("HCM cases (test)")
    at.button(key="FormSubmitter:cs_rename_form-Rename").click().run()
    assert_clean(at)
    assert at.subheader[0].value == "HCM cases (test)"
    at.checkbox(key=f"cs_confirm_{set_id}").check().run()
    at.button[[x.label for x in at.button].index("Delete case set")].click().run()
    assert_clean(at)
    with session_scope() as session:
        assert all(s.id != set_id for s in casesets.list_case_sets(session))


def test_duplicate_name_is_refused_with_a_message(clinician, app):
    at = app(page="case_sets")
    for _ in range(2):
        at.sidebar.text_input(key="cs_new_name").input("Duplicate (test)")
        at.sidebar.button(key="FormSubmitter:cs_create-Create").click()
        at.run()
    assert_clean(at)
    assert any("already exists" in t.proto.body for t in at.toast)
