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
