"""``cmr ingest``: a folder (in place or de-identified) or a PACS over DICOMweb, through the one pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cmr.common import console, err, fail, ready_url, settings


def parse_since(value: str | None) -> dt.date | None:
    """``--since`` as a date (YYYY-MM-DD or YYYYMMDD)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value) if "-" in value else dt.datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        fail(f"--since {value!r} is not a date (YYYY-MM-DD)")


def ingest(
    archive: Annotated[Path | None, typer.Argument(help="Archive folder of DICOM files (folder source).")] = None,
    reports: Annotated[Path | None, typer.Option(help="RIS report export (CSV or JSONL, any encoding).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: settings).")] = None,
    source: Annotated[str, typer.Option(help="folder or dicomweb.")] = "folder",
    url: Annotated[str | None, typer.Option(help="DICOMweb base URL (default: settings pacs_url).")] = None,
    since: Annotated[str | None, typer.Option(help="DICOMweb: only studies from this date (YYYY-MM-DD).")] = None,
    deidentify: Annotated[bool, typer.Option(help="De-identify on the way in (PS3.15 Annex E).")] = False,
) -> None:
    """Scan an archive (or a PACS), import reports and preprocess every new or changed study into clips."""
    from indexer.pipeline import Ingest

    s = settings()
    if source not in ("folder", "dicomweb"):
        fail(f"unknown source {source!r}; use folder or dicomweb")
    if reports is not None and not reports.is_file():
        fail(f"report export {reports} does not exist")
    deidentify = deidentify or s.deidentify
    if source == "dicomweb":
        url = url or s.pacs_url
        if not url:
            fail("no PACS: pass --url or set CMR_PACS_URL")
        day = parse_since(since)
        title = f"ingest from {url}"
    elif archive is None or not archive.is_dir():
        fail(f"archive folder {archive} does not exist" if archive else "give the archive folder to ingest")
    else:
        day, title = None, "de-identified ingest" if deidentify else "ingest summary"
    db_url = ready_url()
    try:
        if source == "dicomweb":
            job = Ingest.dicomweb(s, url, deidentify=deidentify, db_url=db_url, workers=workers)
        else:
            job = Ingest.folder(s, archive, deidentify=deidentify, db_url=db_url, workers=workers)
    except ValueError as exc:  # inconsistent settings: no secret, a bad pacs_auth
        fail(str(exc))
    summary = job.run(reports=reports, since=day)
    print_summary(summary, db_url, title=title)


def print_summary(summary, db_url: str, *, title: str) -> None:
    from catalog.db import session_scope
    from catalog.errors import error_counts
    from catalog.studies import state_counts, view_counts

    with session_scope(db_url) as session:
        errors, states, views = error_counts(session), state_counts(session), view_counts(session)
    table = Table(title=title, show_header=False)
    if summary.listing_error:
        table.add_row("listing failed", summary.listing_error)
    if summary.staged_source:
        table.add_row("studies listed / already current", f"{summary.listed} / {summary.current}")
        table.add_row("staged / filtered out / failed", f"{summary.staged} / {summary.filtered} / {summary.failed}")
        table.add_row("instances / MB staged", f"{summary.instances} / {summary.bytes / 1e6:.1f}")
        if summary.files_not_staged:
            table.add_row("files not staged (see cmr errors)", str(summary.files_not_staged))
        if summary.watermark:
            table.add_row("watermark (next run lists from)", summary.watermark)
    scan = summary.scan
    if scan is not None:
        table.add_row("files scanned", str(scan.files))
        table.add_row("studies new / changed / unchanged",
                      f"{scan.studies_new} / {scan.studies_changed} / {scan.studies_unchanged}")  # fmt: skip
    table.add_row("studies by state", ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    table.add_row("preprocessed / failed (this run)", f"{summary.preprocessed} / {summary.preprocess_failed}")
    table.add_row("series per view", ", ".join(f"{k}: {v}" for k, v in sorted(views.items())))
    reports = f"{summary.reports_imported} / {summary.reports_rejected} / {summary.reports_conflicts}"
    label = "reports imported / rejected / conflicting"
    if summary.staged_source:
        reports, label = f"{reports} / {summary.reports_dropped}", f"{label} / left out"
    table.add_row(label, reports)
    table.add_row("errors by kind", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none")
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    console.print(table)
    if summary.failed or summary.listing_error:
        err.print("some studies could not be fetched: see `cmr errors`; a rerun picks them up")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
