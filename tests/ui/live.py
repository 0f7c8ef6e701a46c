"""A live ``cmr ui`` for real-browser tests and the load bench: Streamlit on a loopback port, Chromium to drive it.

``serve(env, log_path)`` starts the command ``cmr ui`` runs (``cmr.cli_ui.streamlit_command``) with ``env``, waits
for ``/_stcore/health`` and yields the base URL; the server is stopped on exit. ``CHROMIUM_ARGS`` and
``require_chromium()`` are what every browser test launches with and checks first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cmr.cli_ui import streamlit_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
ROOT = Path(__file__).resolve().parents[2]


def require_chromium() -> None:
    """Skip (fail in CI) when Chromium is not installed."""
    import pytest

    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: install the Debian package `chromium`")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
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


@contextmanager
def serve(env: Mapping[str, str], log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(base URL, process)`` of a headless Streamlit server of the app on 127.0.0.1, with ``env`` on top of
    this process's environment; its output goes to ``log_path``."""
    port = free_port()
    with Path(log_path).open("w") as log:
        proc = subprocess.Popen(streamlit_command(port, "127.0.0.1"), cwd=ROOT, env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
