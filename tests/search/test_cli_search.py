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


def test_bad_input_gives_one_line_error(app, env):
    from catalog.migrate import upgrade

    upgrade(env)
    _one_line_error(runner.invoke(app, ["search", ""]), "empty")
    _one_line_error(runner.invoke(app, ["search", "   "]), "empty")
    _one_line_error(runner.invoke(app, ["search", "x" * 100_000]), "2,000")
    _one_line_error(runner.invoke(app, ["search", "lv", "--filter", "colour=red"]), "valid fields", "age")
    _one_line_error(runner.invoke(app, ["search", "lv", "--mode", "pixels"]), "mode")
    _one_line_error(runner.invoke(app, ["search", "lv"]), "cmr index")


def test_database_down(app, env, monkeypatch):
    monkeypatch.setenv("CMR_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/nothing")
    get_settings.cache_clear()
    _one_line_error(runner.invoke(app, ["search", "dilated"]), "cannot reach")


def test_index_then_search(app, env, tmp_path):
    from catalog.migrate import upgrade

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
    assert table.exit_code == 0 and "rank" in table.stdout and "A5." in table.stdout
    similar = runner.invoke(app, ["search", "--similar", "5.1", "--json"])
    assert similar.exit_code == 0 and "5.1" not in [r["study_uid"] for r in json.loads(similar.stdout)]
    _one_line_error(runner.invoke(app, ["search", "--similar", "9.9.9"]), "9.9.9")
