"""``cmr ingest`` from a PACS (DICOMweb) or as de-identified copies: parsing lives in cmr.cli, the work here.

The ``ingest`` command calls :func:`ingest_from_pacs` for ``--source dicomweb`` and
:func:`ingest_folder_deidentified` for ``--deidentify`` on a folder; both print the same kind of summary table.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from catalog import queries
from catalog.db import session_scope

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def parse_since(value: str | None) -> dt.date | None:
    """``--since`` as a date (YYYY-MM-DD or YYYYMMDD)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value) if "-" in value else dt.datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        _fail(f"--since {value!r} is not a date (YYYY-MM-DD)")


def ingest_from_pacs(
    url: str | None, since: str | None, deidentify: bool, *, db_url: str, reports: Path | None = None
) -> None:
    """Fetch new or changed CMR studies from a DICOMweb server (``--url`` or the ``pacs_url`` setting)."""
    from catalog.settings import get_settings
    from indexer.pacs_ingest import ingest_dicomweb

    settings = get_settings()
    url = url or getattr(settings, "pacs_url", "")
    if not url:
        _fail("no PACS: pass --url or set CMR_PACS_URL")
    try:
        summary = ingest_dicomweb(
            db_url,
            url,
            since=parse_since(since),
            settings=settings,
            reports=reports,
            deidentify=deidentify or getattr(settings, "deidentify", False),
        )
    except ValueError as exc:
        _fail(str(exc))
    _print(summary, db_url, title=f"ingest from {url}")


def ingest_folder_deidentified(archive: Path, *, db_url: str, reports: Path | None = None) -> None:
    """Stage de-identified copies of the archive under data_dir/deid/ and ingest those."""
    from catalog.settings import get_settings
    from indexer.deid_ingest import ingest_folder_deidentified as run

    try:
        summary = run(db_url, archive, settings=get_settings(), reports=reports)
    except ValueError as exc:
        _fail(str(exc))
    _print(summary, db_url, title="de-identified ingest")


def _print(summary, db_url: str, *, title: str) -> None:
    with session_scope(db_url) as session:
        errors = queries.error_counts(session)
        states = queries.state_counts(session)
    table = Table(title=title, show_header=False)
    if summary.listing_error:
        table.add_row("listing failed", summary.listing_error)
    table.add_row("studies listed / already current", f"{summary.listed} / {summary.current}")
    table.add_row("staged / filtered out / failed", f"{summary.staged} / {summary.filtered} / {summary.failed}")
    table.add_row("instances / MB staged", f"{summary.instances} / {summary.bytes / 1e6:.1f}")
    if summary.watermark:
        table.add_row("watermark (next run lists from)", summary.watermark)
    if summary.scan is not None:
        scan = summary.scan
        table.add_row("studies new / changed / unchanged",
                      f"{scan.studies_new} / {scan.studies_changed} / {scan.studies_unchanged}")  # fmt: skip
    table.add_row("reports imported / rejected / left out",
                  f"{summary.reports_imported} / {summary.reports_rejected} / {summary.reports_dropped}")  # fmt: skip
    table.add_row("preprocessed / failed (this run)", f"{summary.preprocessed} / {summary.preprocess_failed}")
    table.add_row("studies by state", ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    table.add_row("errors by kind", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none")
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    console.print(table)
    if summary.failed or summary.listing_error:
        err.print("some studies could not be fetched: see `cmr errors`; a rerun picks them up")
