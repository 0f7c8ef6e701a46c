"""The app in a real browser: ``cmr ui``'s Streamlit command on a loopback port, driven by Playwright/Chromium."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import casesets
from catalog.db import session_scope
from cmr.cli_ui import streamlit_command
from tests.fixtures_engine import EngineData

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit at {url} not healthy after {timeout} s")


def _settle(page) -> None:
    """Wait until the script run is over and every image has loaded."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")


@pytest.fixture
def server(engine_data: EngineData, tmp_path: Path) -> Iterator[str]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: install the Debian package `chromium`")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it")
    port = _free_port()
    env = {**os.environ, **engine_data.env(), "CMR_ROLE": "clinician", "CMR_USER": "browser-test"}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(streamlit_command(port, "127.0.0.1"), cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_search_open_study_and_add_to_case_set(server: str, engine_data: EngineData, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
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
            expect(page.get_by_role("heading", name="Report")).to_be_visible()
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
