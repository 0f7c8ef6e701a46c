"""``cmr index`` and ``cmr search`` through typer's CliRunner: output formats and one-line errors."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from catalog.settings import get_settings
from cmr.cli_search import register
from tests.search.builders import StudySpec, add_studies, tiny_checkpoints, write_clip

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CMR_DATABASE_URL", url)
    monkeypatch.setenv("CMR_CHECKPOINT", str(tiny_checkpoints()[0]))
    monkeypatch.setenv("CMR_WORKERS", "0")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    message = result.stderr.strip() if result.stderr else result.output.strip()
    assert message.startswith("error:") and len(message.splitlines()) == 1, message
    for word in words:
        assert word in message


def _indexed(app, env: str, tmp_path, prefix: str, n: int, batch: int, **per_study) -> list[int]:
    """A migrated catalog with ``n`` studies ``<prefix>.<i>`` (clip files written; ``per_study`` maps a StudySpec
    field to a function of i) embedded and indexed by ``cmr index``; returns their ids."""
    from migrations.apply import upgrade

    upgrade(env)
    clips = tmp_path / "clips"
    ids = add_studies(env, [
        StudySpec(uid=f"{prefix}.{i}", clip_path=write_clip(clips, f"{prefix}.{i}", i),
                  **{name: value(i) for name, value in per_study.items()})
        for i in range(n)
    ])
    assert runner.invoke(app, ["index", "--batch-size", str(batch)]).exit_code == 0
    return ids


def test_bad_input_gives_one_line_error(app, env):
    from migrations.apply import upgrade

    upgrade(env)
    _one_line_error(runner.invoke(app, ["search", ""]), "empty")
    _one_line_error(runner.invoke(app, ["search", "   "]), "empty")
    _one_line_error(runner.invoke(app, ["search", "x" * 100_000]), "2,000")
    _one_line_error(runner.invoke(app, ["search", "lv", "--filter", "colour=red"]), "valid fields", "age")
    _one_line_error(runner.invoke(app, ["search", "lv", "--mode", "pixels"]), "mode")
    _one_line_error(runner.invoke(app, ["search", "lv", "--filter", "date>9999-12-31"]), "date")
    _one_line_error(runner.invoke(app, ["search", "lv", "--filter", "date<0001-01-01"]), "date")
    for k in ("0", "-1", "1001"):
        _one_line_error(runner.invoke(app, ["search", "lv", "-k", k]), "k must be between 1 and 1000")
    _one_line_error(runner.invoke(app, ["search", "lv"]), "cmr index")


def test_database_down(app, env, monkeypatch):
    monkeypatch.setenv("CMR_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/nothing")
    get_settings.cache_clear()
    _one_line_error(runner.invoke(app, ["search", "dilated"]), "cannot reach")


def test_index_then_search(app, env, tmp_path):
    from migrations.apply import upgrade

    upgrade(env)
    clips = tmp_path / "clips"
    add_studies(env, [
        StudySpec(uid=f"5.{i}", clip_path=write_clip(clips, f"5.{i}", i), age=40 + i,
                  impression="dilated left ventricle" if i % 2 else "normal study")
        for i in range(4)
    ])
    result = runner.invoke(app, ["index", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "4 / 0" in result.output
    result = runner.invoke(app, ["search", "enlarged left ventricle", "-k", "3", "--json", "--filter", "age>=41"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert {"rank", "score", "study_uid", "accession", "signals"} <= set(rows[0])
    assert all(r["patient_age"] >= 41 for r in rows)
    table = runner.invoke(app, ["search", "enlarged left ventricle", "-k", "2"])
    assert table.exit_code == 0 and " 1. " in table.stdout and "A5." in table.stdout
    similar = runner.invoke(app, ["search", "--similar", "5.1", "--json"])
    assert similar.exit_code == 0 and "5.1" not in [r["study_uid"] for r in json.loads(similar.stdout)]
    _one_line_error(runner.invoke(app, ["search", "--similar", "9.9.9"]), "9.9.9")
    # every CLI search is audited: who (CMR_USER, else the OS user), what, how many
    import getpass

    from catalog import audit
    from catalog.db import session_scope

    with session_scope(env) as session:
        rows = [r for r in audit.latest(session, 100) if r.action in ("search", "similar")]
    assert [(r.action, r.n_results) for r in rows] == [("similar", 3), ("search", 2), ("search", 3)]
    assert {r.user for r in rows} == {getpass.getuser()}, "no CMR_USER: the operating-system user"
    assert rows[-1].query == "enlarged left ventricle" and rows[-1].filters == {"age_min": 41}
    assert "5.1" not in rows[0].query, "the audit names the study by its catalog number"


def test_search_by_example_and_qa(app, env, tmp_path, monkeypatch):
    from catalog import audit, casesets
    from catalog.db import session_scope

    ids = _indexed(app, env, tmp_path, "6", 6, 3, patient=lambda i: f"p{i}",
                   impression=lambda i: "dilated left ventricle. No LGE." if i % 2 else "normal study. No LGE.")
    result = runner.invoke(app, ["search", "--like", f"#{ids[0]}", "--like", str(ids[1]), "--unlike", str(ids[2]),
                                 "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    found = [r["study_number"] if "study_number" in r else r["study_id"] for r in json.loads(result.stdout)]
    assert len(found) == 3 and not set(found) & set(ids[:3]), "examples are not returned"
    with session_scope(env) as session:
        set_id = casesets.create(session, "teaching DCM")
        casesets.add_study(session, set_id, ids[3])
    result = runner.invoke(app, ["search", "dilated", "--like-set", "teaching DCM", "-k", "2"])
    assert result.exit_code == 0 and "like #" in result.stdout, result.output
    _one_line_error(runner.invoke(app, ["search", "--like", "abc"]), "study number")
    _one_line_error(runner.invoke(app, ["search", "--like", "999999"]), "#999999")
    _one_line_error(runner.invoke(app, ["search", "--like-set", "nope"]), "no case set")
    _one_line_error(runner.invoke(app, ["search", "--like", "1", "--unlike", "1"]), "both")
    _one_line_error(runner.invoke(app, ["search", "--similar", "6.1", "--like", "1"]), "not both")
    # the discrepancy list: JSON as the role may see it, audited, bad finding refused
    monkeypatch.setenv("CMR_ROLE", "researcher")
    get_settings.cache_clear()
    result = runner.invoke(app, ["qa", "--json", "-k", "5"])
    assert result.exit_code == 0, result.output
    for row in json.loads(result.stdout):
        assert {"finding", "report_says", "image_probability", "confidence", "study_number"} <= set(row)
        assert "study_uid" not in row and "accession" not in row
    _one_line_error(runner.invoke(app, ["qa", "--finding", "big_heart"]), "unknown finding")
    with session_scope(env) as session:
        rows = [(r.action, r.query) for r in audit.latest(session, 100) if r.action in ("search", "qa")]
    assert rows[0][0] == "qa" and rows[1] == ("search", f"dilated · like #{ids[3]}")
    assert rows[2] == ("search", f"like #{ids[0]}, #{ids[1]}; unlike #{ids[2]}")


def test_researcher_json_holds_no_identifier_and_search_is_audited(app, env, tmp_path, monkeypatch):
    from catalog import audit
    from catalog.db import session_scope

    _indexed(app, env, tmp_path, "7", 4, 2, age=lambda i: 88 + i,
             impression=lambda i: "dilated left ventricle" if i % 2 else "normal study")
    monkeypatch.setenv("CMR_ROLE", "researcher")
    monkeypatch.setenv("CMR_USER", "dr-research")
    get_settings.cache_clear()
    result = runner.invoke(app, ["search", "dilated left ventricle", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 4
    for row in rows:
        assert not {"study_uid", "accession", "patient_id", "patient_name", "patient_birth_date", "study_date",
                    "clip_path"} & set(row), row
        assert {"study_number", "patient_key", "study_year", "impression"} <= set(row)
    assert "90+" in [r["patient_age"] for r in rows], "ages of 90 and over are pooled"
    assert not any(f"7.{i}" in result.stdout for i in range(4))
    assert "2023-06-01" not in result.stdout and "Doe" not in result.stdout and "PID-" not in result.stdout
    table = runner.invoke(app, ["search", "dilated left ventricle", "-k", "4"])
    assert table.exit_code == 0 and "A7." not in table.stdout and "#" in table.stdout
    with session_scope(env) as session:
        mine = [r for r in audit.latest(session, 100) if r.user == "dr-research"]
    assert [(r.action, r.role, r.n_results, r.query) for r in mine] == [
        ("search", "researcher", 4, "dilated left ventricle")] * 2


REPORTS = (
    "Dilated left ventricle with severely impaired systolic function, LVEF 24 %. No late gadolinium enhancement.",
    "Normal left ventricular size and function, LVEF 63 %. No late gadolinium enhancement seen anywhere.",
    "Asymmetric septal hypertrophy, maximal wall thickness 19 mm, with patchy mid-wall LGE: hypertrophic "
    "cardiomyopathy.",
    "Anderson-Fabry disease: concentric hypertrophy with basal inferolateral mid-wall enhancement.",
)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_search_fits_the_terminal_and_says_why(app, env, tmp_path, monkeypatch, width):
    """In an 80-column terminal no line is wider than the terminal and no snippet is cut to a word per line;
    the JSON gives why and the report's facts; `cmr studies --json` gives facts too."""
    from cmr import common

    # reports added without facts: the search's catalog upgrade reads them (backfill)
    _indexed(app, env, tmp_path, "6", 6, 3, impression=lambda i: REPORTS[i % 4])
    monkeypatch.setattr(common.console, "width", width)
    result = runner.invoke(app, ["search", "dilated LV with EF around 25 percent", "-k", "4"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width, result.stdout
    assert "LVEF 24 %" in result.stdout
    if width < 140:
        assert sum(1 for line in lines if len(line.split()) == 1 and not line.strip()[:1].isdigit()) <= 1
    rows = json.loads(runner.invoke(app, ["search", "dilated LV with EF around 25 percent", "-k", "4",
                                          "--json"]).stdout)
    assert rows[0]["why"].startswith("report: ") and rows[0]["facts"]["lvef"] == 24
    assert rows[0]["facts"]["findings"]["lge_present"] == "absent"
    fabry = json.loads(runner.invoke(app, ["search", "Fabry", "-k", "3", "--json"]).stdout)
    assert fabry[0]["impression"].startswith("Anderson-Fabry") and "full text: fabry" in fabry[0]["why"]


def test_studies_json_gives_facts(env, tmp_path):
    from cmr.cli import app as cmr_app
    from migrations.apply import upgrade

    upgrade(env)
    add_studies(env, [StudySpec(uid="8.0", impression=REPORTS[0]), StudySpec(uid="8.1")])
    result = runner.invoke(cmr_app, ["studies", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["study_uid"]: r for r in json.loads(result.stdout)}
    facts = rows["8.0"]["facts"]
    assert set(facts) >= {"lvef", "rvef", "lvedvi", "rvedvi", "lv_mass_index", "max_wall_thickness_mm", "findings"}
    assert facts["lvef"] == 24 and facts["rvef"] is None
    assert facts["findings"] == {"lv_dilation": "present", "lv_systolic_dysfunction": "present",
                                 "lge_present": "absent"}
    assert rows["8.1"]["facts"]["lvef"] is None and rows["8.1"]["facts"]["findings"] == {}
