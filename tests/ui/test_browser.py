"""The app in a real browser: ``cmr ui``'s Streamlit command on a loopback port, driven by Playwright/Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import casesets
from catalog.db import session_scope
from tests.fixtures_engine import EngineData
from tests.ui.live import CHROMIUM, CHROMIUM_ARGS, require_chromium, serve


def _settle(page) -> None:
    """Wait until the script run is over and every image has loaded."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")


@pytest.fixture
def server(engine_data: EngineData, tmp_path: Path) -> Iterator[str]:
    require_chromium()
    env = {**engine_data.env(), "CMR_ROLE": "clinician", "CMR_USER": "browser-test"}
    with serve(env, tmp_path / "streamlit.log") as (url, _proc):
        yield url


def test_search_open_study_and_add_to_case_set(server: str, engine_data: EngineData, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(server)
            box = page.get_by_label("Describe the findings you are looking for")
            box.fill("dilated left ventricle")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text(re.compile(r"^12 studies, best match first"))).to_be_visible(timeout=90_000)
            expect(page.get_by_text(re.compile(r"^#1 · score"))).to_be_visible()
            assert "q=dilated+left+ventricle" in page.url or "q=dilated%20left%20ventricle" in page.url
            _settle(page)
            page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

            page.get_by_role("link", name="Open").first.click()
            expect(page.get_by_role("heading", name="Report", exact=True)).to_be_visible()
            expect(page.get_by_role("tab", name="4CH")).to_be_visible()
            study_id = int(re.search(r"study=(\d+)", page.url).group(1))

            page.get_by_role("button", name="Add to case set").first.click()
            page.get_by_label("…or a new case set").fill("Browser set")
            page.get_by_label("Note").fill("from the browser")
            page.get_by_role("button", name="Add", exact=True).click()
            expect(page.get_by_text(re.compile(r"added to “Browser set”"))).to_be_visible()
            _settle(page)
            page.screenshot(path=str(tmp_path / "study.png"), full_page=True)
        finally:
            browser.close()

    with session_scope(engine_data.url) as session:
        found = next(c for c in casesets.list_case_sets(session) if c.name == "Browser set")
        assert [(e.study_id, e.note) for e in casesets.entries(session, found.id)] == [(study_id, "from the browser")]
    assert (tmp_path / "study.png").stat().st_size > 10_000
