"""The ``cmr`` command line. Commands only parse arguments, call into the packages and print results."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(help="Natural-language case retrieval for cardiac MRI.", no_args_is_help=True)
db_app = typer.Typer(help="Catalog database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _settings():
    from catalog.settings import get_settings

    return get_settings()


def _ready_url() -> str:
    """The catalog URL, migrated to the newest schema (so every command works on a fresh data folder)."""
    from catalog.db import DatabaseUnavailable
    from catalog.migrate import upgrade

    url = _settings().resolved_database_url()
    try:
        upgrade(url)
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    return url


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or migrate the catalog schema (Alembic)."""
    from catalog.db import DatabaseUnavailable, safe_url
    from catalog.migrate import current_revision, upgrade

    url = _settings().resolved_database_url()
    try:
        upgrade(url, revision)
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    console.print(f"catalog at {safe_url(url)} is at revision {current_revision(url)}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the archive to.")] = Path("demo"),
    studies: Annotated[int, typer.Option(min=1, help="Number of studies.")] = 60,
    site: Annotated[list[str] | None, typer.Option(help="Site preset(s); default: all sites mixed.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same archive).")] = 0,
    faults: Annotated[float, typer.Option(min=0.0, max=1.0, help="Rate of planted bad inputs.")] = 0.0,
) -> None:
    """Make a phantom CMR archive: DICOM, RIS report export, ground truth and planted faults."""
    from phantom.archive import synthesize

    summary = synthesize(out, studies, sites=site or None, seed=seed, fault_rate=faults, progress=True)
    rate = summary.n_studies / max(summary.seconds, 1e-9)
    console.print(
        f"wrote {summary.n_studies} studies, {summary.n_files} files, {summary.bytes / 1e6:.1f} MB to {out} "
        f"in {summary.seconds:.1f} s ({rate:.2f} studies/s, {summary.bytes / 1e6 / summary.n_studies:.2f} MB/study)"
    )


@app.command()
def ingest(
    archive: Annotated[Path, typer.Argument(help="Archive folder of DICOM files.")],
    reports: Annotated[Path | None, typer.Option(help="RIS report export (CSV or JSONL).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: settings).")] = None,
) -> None:
    """Scan an archive, import reports and preprocess every new or changed study into clips."""
    from catalog import queries
    from catalog.db import session_scope
    from indexer.ingest import ingest_folder

    if not archive.is_dir():
        _fail(f"archive folder {archive} does not exist")
    if reports is not None and not reports.is_file():
        _fail(f"report export {reports} does not exist")
    s = _settings()
    url = _ready_url()
    summary = ingest_folder(
        url, archive, s.clip_dir, reports=reports, workers=workers or s.workers, salt=s.pseudonym_salt
    )
    scan = summary.scan
    with session_scope(url) as session:
        views = queries.view_counts(session)
        errors = queries.error_counts(session)
        states = queries.state_counts(session)
    table = Table(title="ingest summary", show_header=False)
    table.add_row("files scanned", str(scan.files))
    table.add_row(
        "studies new / changed / unchanged", f"{scan.studies_new} / {scan.studies_changed} / {scan.studies_unchanged}"
    )
    table.add_row("studies by state", ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    table.add_row("preprocessed / failed (this run)", f"{summary.preprocessed} / {summary.preprocess_failed}")
    table.add_row("series per view", ", ".join(f"{k}: {v}" for k, v in sorted(views.items())))
    table.add_row("reports imported / rejected", f"{summary.reports_imported} / {summary.reports_rejected}")
    table.add_row("errors by kind", ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none")
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    console.print(table)


@app.command()
def studies(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every study of the catalog."""
    from catalog import queries
    from catalog.db import session_scope

    url = _ready_url()
    with session_scope(url) as session:
        errors: dict[str, str] = {}
        for e in queries.list_errors(session):
            if e.study_uid and e.study_uid not in errors:
                errors[e.study_uid] = e.reason
        rows = [
            {
                "study_uid": st.study_uid,
                "accession": st.accession,
                "site": st.institution,
                "manufacturer": st.manufacturer,
                "views": list(st.views or []),
                "state": st.state,
                "error": errors.get(st.study_uid),
            }
            for st in queries.list_studies(session)
        ]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("study_uid", "accession", "site", "manufacturer", "views", "state", "error")
    for r in rows:
        table.add_row(
            r["study_uid"],
            r["accession"] or "",
            r["site"] or "",
            r["manufacturer"] or "",
            " ".join(r["views"]),
            r["state"],
            r["error"] or "",
        )
    console.print(table)


@app.command()
def errors(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List ingest errors (path, study UID, stage, reason)."""
    from catalog import queries
    from catalog.db import session_scope

    url = _ready_url()
    with session_scope(url) as session:
        rows = [
            {"path": e.path, "study_uid": e.study_uid, "stage": e.stage, "kind": e.kind, "reason": e.reason}
            for e in queries.list_errors(session)
        ]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("stage", "kind", "path", "study_uid", "reason")
    for r in rows:
        table.add_row(r["stage"], r["kind"], r["path"] or "", r["study_uid"] or "", r["reason"])
    console.print(table)


@app.command()
def clip(
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID.")],
    out: Annotated[Path, typer.Option(help="PNG (strip) or GIF (animation) to write.")] = Path("clip.png"),
) -> None:
    """Write a picture of a study's clips, to check the preprocessing crop."""
    from catalog import queries
    from catalog.db import session_scope
    from cmrclip.clips import load_clip
    from indexer.clip_preview import clip_gif, clip_strip

    url = _ready_url()
    with session_scope(url) as session:
        study = queries.study_by_uid(session, study_uid)
        path = study.clip_path if study else None
    if study is None:
        _fail(f"no study {study_uid} in the catalog")
    if not path or not Path(path).exists():
        _fail(f"study {study_uid} has no clip yet: run `cmr ingest` first")
    views = load_clip(Path(path))
    if out.suffix.lower() == ".gif":
        out.write_bytes(clip_gif(views))
    else:
        clip_strip(views).save(out)
    console.print(f"wrote {out}")
