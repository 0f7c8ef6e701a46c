"""Fixtures of the UI tests: one real engine setup per session, settings pointed at it per test, AppTest helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures_engine import EngineData, build_engine_data

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture(scope="session")
def engine_data(tmp_path_factory: pytest.TempPathFactory) -> EngineData:
    return build_engine_data(tmp_path_factory.mktemp("ui-engine"))


def _point_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    from catalog.settings import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    """A user name per test, so audit assertions see only this test's rows."""
    return f"tester-{request.node.name}"[:100]


@pytest.fixture
def clinician(engine_data: EngineData, user: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineData]:
    _point_settings(monkeypatch, {**engine_data.env(), "CMR_ROLE": "clinician", "CMR_USER": user})
    yield engine_data
    _clear_settings()


@pytest.fixture
def researcher(engine_data: EngineData, user: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineData]:
    _point_settings(monkeypatch, {**engine_data.env(), "CMR_ROLE": "researcher", "CMR_USER": user})
    yield engine_data
    _clear_settings()


def _clear_settings() -> None:
    from catalog.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture
def app() -> Callable[..., AppTest]:
    """``app(page="study", study="3")``: an AppTest of the entry script on one page, with URL query parameters."""

    def make(page: str = "search", **params: str | list[str]) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=90)
        for name, value in params.items():
            at.query_params[name] = value
        at.switch_page(f"app_pages/{page}.py")
        return at.run()

    return make


def rendered_text(at: AppTest) -> str:
    """Everything the browser would receive for this run's elements (protobufs as text), plus the URL."""
    return "\n".join(str(getattr(node, "proto", "")) for node in at._tree) + "\n" + str(at.query_params)


def assert_clean(at: AppTest) -> None:
    """No exception and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def audit_rows(user: str, action: str | None = None) -> list:
    from catalog import audit
    from catalog.db import session_scope

    with session_scope() as session:
        rows = audit.latest(session, 1000)
    return [r for r in rows if r.user == user and (action is None or r.action == action)]
