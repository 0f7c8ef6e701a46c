"""``cmr ui``: start the Streamlit app (``ui/app.py``) as a headless server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import ui

LOOPBACK = "127.0.0.1"


def streamlit_command(port: int, address: str | None = LOOPBACK) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, no tracebacks in the browser, bound to
    ``address`` (the loopback address when None: all interfaces only when asked for)."""
    script = Path(ui.__file__).parent / "app.py"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]
    return cmd + ["--server.address", address or LOOPBACK]


def register(app: typer.Typer) -> None:
    """Add the ``ui`` command to the ``cmr`` application."""

    @app.command("ui")
    def run_ui(
        port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to serve on.")] = 8501,
        address: Annotated[
            str,
            typer.Option(help="Address to bind: the loopback address unless told otherwise (0.0.0.0: all "
                         "interfaces); put a reverse proxy in front, see the README's deployment part."),
        ] = LOOPBACK,
    ) -> None:
        """Start the web app: search, study pages, case sets, cohorts, status (Ctrl-C stops it)."""
        from catalog.db import DatabaseUnavailable
        from catalog.settings import get_settings
        from migrations.apply import upgrade

        try:
            upgrade(get_settings().resolved_database_url())  # a fresh data folder gets its catalog schema
        except DatabaseUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"CMR case search on http://{address}:{port}")
        try:
            code = subprocess.call(streamlit_command(port, address))
        except KeyboardInterrupt:
            code = 0
        raise typer.Exit(code)
