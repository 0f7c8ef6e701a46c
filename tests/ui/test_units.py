"""Pure helpers of the UI: URL state, highlighting, case set ordering, the ``cmr ui`` command."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from typer.testing import CliRunner

from catalog import casesets
from catalog.casesets import CaseSetError
from catalog.db import session_scope
from cmr.cli_ui import register, streamlit_command
from search.filters import Filters
from ui.highlight import highlight, query_terms
from ui.urlstate import SearchState


def test_search_state_round_trips_through_the_url():
    state = SearchState(query="septal hypertrophy", mode="report", k=24, filters=Filters(
        age_min=50, sex="F", date_from=dt.date(2020, 1, 1), views=("sax", "lge_sax"), field_strengths=(3.0,),
        has_report=True))
    params = state.to_params()
    assert params["views"] == ["sax", "lge_sax"] and params["has_report"] == "true"
    assert SearchState.from_params(params) == state


def test_bad_url_values_fall_back_to_defaults():
    state = SearchState.from_params({"q": " x ", "k": "7", "mode": "nope", "age_min": "old", "views": ["bogus"],
                                     "date_to": "2020-13-01", "similar": "abc"})
    assert state == SearchState(query="x")


def test_similar_replaces_the_query_in_the_url():
    assert SearchState(query="ignored", similar_to=5).to_params() == {"similar": "5"}


def test_highlight_marks_query_words_and_escapes_markdown():
    out = highlight("Septal hypertrophy (19 mm) with mid-wall LGE; *no* effusion.", "septal hypertrophy with LGE")
    assert ":orange-background[Septal]" in out and ":orange-background[LGE]" in out
    assert "with :orange" not in out, "stopwords are not highlighted"
    assert r"\*no\*" in out and r"\(19 mm\)" in out
    assert query_terms("the patients with LGE") == ["lge"]


def test_case_set_move_and_remove_keep_positions_dense(clinician, engine_data):
    ids = engine_data.study_ids[:4]
    with session_scope() as session:
        set_id = casesets.create(session, "Order (test)")
        for sid in ids:
            assert casesets.add_study(session, set_id, sid)
        assert not casesets.add_study(session, set_id, ids[0], "again")
    with session_scope() as session:
        casesets.move(session, set_id, ids[0], 10)
        casesets.move(session, set_id, ids[2], -1)
        casesets.remove_study(session, set_id, ids[3])
    with session_scope() as session:
        entries = casesets.entries(session, set_id)
        assert [(e.position, e.study_id) for e in entries] == [(0, ids[2]), (1, ids[1]), (2, ids[0])]
        assert entries[2].note == "again"
        with pytest.raises(CaseSetError):
            casesets.create(session, "  ")
        with pytest.raises(CaseSetError):
            casesets.add_study(session, set_id, 99999)


def test_cmr_ui_command_runs_streamlit_headless(monkeypatch, clinician):
    calls = []
    monkeypatch.setattr("cmr.cli_ui.subprocess.call", lambda cmd: calls.append(cmd) or 0)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so typer keeps "ui" as a subcommand
    result = CliRunner().invoke(app, ["ui", "--port", "8612"])
    assert result.exit_code == 0, result.output
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("ui/app.py")
    assert cmd[cmd.index("--server.headless") + 1] == "true" and cmd[cmd.index("--server.port") + 1] == "8612"
    assert "--server.address" in streamlit_command(8501, "127.0.0.1")


def test_forwarded_user_is_trusted_only_from_a_configured_proxy():
    from ui.state import proxy_user

    headers = {"X-Forwarded-User": "admin"}
    assert proxy_user(headers, "127.0.0.1", "") is None, "no trusted proxy configured: the header is ignored"
    assert proxy_user(headers, "10.0.0.9", "127.0.0.1") is None, "sent straight to the app, not via the proxy"
    assert proxy_user(headers, "127.0.0.1", "127.0.0.1, 10.0.0.2") == "admin"
    assert proxy_user({}, "127.0.0.1", "127.0.0.1") is None


def test_ui_binds_to_loopback_unless_told_otherwise():
    cmd = streamlit_command(8501, None)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    cmd = streamlit_command(8501, "0.0.0.0")
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"


def test_researcher_report_loses_the_rows_own_identifiers_even_in_free_text():
    import datetime as dt

    from catalog.studies import StudyDetail
    from search import privacy

    text = ("Patient: NGUYEN, Luca MRN: 86970426 Acc: A7788051 Date: 2020-05-01\n"
            "DOB 03.02.1951. Mr Nguyen was seen for 1.2.840.99.7; compare with study of 01/05/2020.\n"
            "IMPRESSION: dilated LV.")
    detail = StudyDetail(
        study_id=125, study_uid="1.2.840.99.7", accession="A7788051", study_date=dt.date(2020, 5, 1), patient_age=69,
        patient_sex="M", institution="H", manufacturer="M", scanner_model="S", field_strength=1.5, views=("sax",),
        impression="Luca Nguyen: dilated LV.", has_report=True, patient_key="pk1", patient_id="86970426",
        patient_name="NGUYEN^LUCA", patient_birth_date=dt.date(1951, 2, 3), clip_path=None, study_description=None,
        state="preprocessed", report_text=text, findings=None)
    shown = privacy.for_role(detail, "researcher")
    for secret in ("NGUYEN", "Nguyen", "Luca", "86970426", "A7788051", "2020-05-01", "03.02.1951", "01/05/2020",
                   "1.2.840.99.7"):
        assert secret not in shown.report_text and secret not in shown.impression, secret
    assert "dilated LV" in shown.report_text and "2020" in shown.report_text
    assert shown.patient_name is shown.patient_id is shown.accession is shown.patient_birth_date is None
    assert privacy.for_role(detail, "clinician") is detail
