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

app = typer.Typer(
    help="Natural-language case retrieval for cardiac MRI.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold patient data
)
db_app = typer.Typer(help="Catalog database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    """One readable line on stderr and a non-zero exit; never a traceback."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
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

    summary = synthesize(
        out, studies, sites=site or None, seed=seed, fault_rate=faults, progress=True, workers=_settings().workers
    )
    rate = summary.n_studies / max(summary.seconds, 1e-9)
    console.print(
        f"wrote {summary.n_studies} studies, {summary.n_files} files, {summary.bytes / 1e6:.1f} MB to {out} "
        f"in {summary.seconds:.1f} s ({rate:.2f} studies/s, {summary.bytes / 1e6 / summary.n_studies:.2f} MB/study)"
    )


@app.command()
def ingest(
    archive: Annotated[Path | None, typer.Argument(help="Archive folder of DICOM files (folder source).")] = None,
    reports: Annotated[Path | None, typer.Option(help="RIS report export (CSV or JSONL).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: settings).")] = None,
    source: Annotated[str, typer.Option(help="folder or dicomweb.")] = "folder",
    url: Annotated[str | None, typer.Option(help="DICOMweb base URL (default: settings pacs_url).")] = None,
    since: Annotated[str | None, typer.Option(help="DICOMweb: only studies from this date (YYYY-MM-DD).")] = None,
    deidentify: Annotated[bool, typer.Option(help="De-identify on the way in (PS3.15 Annex E).")] = False,
) -> None:
    """Scan an archive (or a PACS), import reports and preprocess every new or changed study into clips."""
    from catalog import queries
    from catalog.db import session_scope
    from indexer.ingest import ingest_folder

    s = _settings()
    if source not in ("folder", "dicomweb"):
        _fail(f"unknown source {source!r}; use folder or dicomweb")
    if reports is not None and not reports.is_file():
        _fail(f"report export {reports} does not exist")
    if source == "dicomweb":
        from cmr.cli_pacs import ingest_from_pacs

        ingest_from_pacs(url or s.pacs_url, since, deidentify or s.deidentify, db_url=_ready_url(), reports=reports)
        return
    if archive is None or not archive.is_dir():
        _fail(f"archive folder {archive} does not exist" if archive else "give the archive folder to ingest")
    url = _ready_url()
    if deidentify or s.deidentify:
        from cmr.cli_pacs import ingest_folder_deidentified

        ingest_folder_deidentified(archive, db_url=url, reports=reports)
        return
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


def _records(url: str):
    from catalog import queries
    from catalog.db import session_scope
    from cmrclip.records import StudyRecord

    with session_scope(url) as session:
        rows = queries.study_records(session)
    return [StudyRecord(**{**r, "clip_path": Path(r["clip_path"])}) for r in rows]


@app.command()
def train(
    config: Annotated[str, typer.Option(help="Model config name (cmrclip/model_configs).")] = "cpu-small",
    variant: Annotated[str, typer.Option(help="full | static | single_view (baselines).")] = "full",
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    batch_size: Annotated[int, typer.Option(min=2)] = 32,
    lr: Annotated[float, typer.Option()] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (resume later).")] = None,
    impression_prob: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of steps captioned by the impression; the rest by report sentences.")] = 0.5,
    activate: Annotated[bool, typer.Option(help="Make the result the checkpoint index/search use.")] = True,
    restart: Annotated[bool, typer.Option(help="Start over instead of resuming an earlier run's state.")] = False,
) -> None:
    """Contrastive training on (study clips, report impression) pairs of the training split."""
    from cmrclip.train import train as run_training
    from indexer.preprocess import PREPROCESS_VERSION

    s = _settings()
    url = _ready_url()
    records = _records(url)
    if not records:
        _fail("no preprocessed studies in the catalog: run `cmr ingest` first")
    out = s.checkpoint_dir / f"{config}-{variant}-s{seed}"
    try:
        path = run_training(
            records,
            out,
            config_name=config,
            variant=variant,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            holdout_site=s.holdout_site or None,
            preprocess_version=PREPROCESS_VERSION,
            device=s.device,
            max_steps=max_steps,
            impression_prob=impression_prob,
            resume=not restart,
        )
    except ValueError as exc:
        _fail(str(exc))
    if activate and variant == "full" and path.is_file():
        (s.checkpoint_dir / "ACTIVE").write_text(str(path.resolve()))
    console.print(f"checkpoint: {path}")


@app.command("eval")
def evaluate_cmd(
    ground_truth: Annotated[Path, typer.Option(help="ground_truth.csv of the phantom archive.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint (default: the active one).")] = None,
    split: Annotated[str, typer.Option(help="train | val | test | external")] = "test",
    site: Annotated[str | None, typer.Option(help="Only studies of this institution.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md, plots and metrics.json.")] = Path("eval"),
    json_out: Annotated[Path | None, typer.Option(help="Also write the metrics JSON here.")] = None,
    baselines: Annotated[bool, typer.Option(help="Train and evaluate static / single-view baselines.")] = True,
) -> None:
    """Zero-shot, few-shot, probe and retrieval metrics against ground truth, with baselines, as a report."""
    import csv
    import shutil

    from cmrclip.checkpoint import read_checkpoint_meta
    from cmrclip.evaluate import evaluate
    from cmrclip.train import train as run_training

    s = _settings()
    checkpoint = checkpoint or s.active_checkpoint()
    if checkpoint is None or not checkpoint.is_file():
        _fail("no checkpoint: run `cmr train` first (or pass --checkpoint)")
    if not ground_truth.is_file():
        _fail(f"ground truth {ground_truth} does not exist")
    url = _ready_url()
    records = _records(url)
    with ground_truth.open(newline="") as fh:
        truth = {row["study_uid"]: row for row in csv.DictReader(fh)}
    meta = read_checkpoint_meta(checkpoint)
    trained = {}
    if baselines:
        args = meta.training
        for variant in ("static", "single_view"):
            baseline = {
                "out_dir": s.checkpoint_dir / f"{args['config_name']}-{variant}-s{args['seed']}",
                "config_name": args["config_name"], "variant": variant, "epochs": args["epochs"],
                "batch_size": args["batch_size"], "lr": args["lr"], "seed": args["seed"],
                "holdout_site": args.get("holdout_site"), "preprocess_version": args["preprocess_version"],
                "device": s.device, "impression_prob": args.get("impression_prob", 1.0),
            }
            try:  # a finished baseline of the same settings is reused
                trained[variant] = run_training(records, **baseline)
            except ValueError:  # one of other settings (e.g. an older model config) is trained again
                trained[variant] = run_training(records, resume=False, **baseline)
    results = evaluate(
        checkpoint, records, truth, split=split, site=site, baselines=trained, out_dir=out, device=s.device
    )
    if json_out:
        shutil.copy(out / "metrics.json", json_out)
    console.print(
        f"report: {out / 'report.md'}  zero-shot macro AUC {results.get('zero_shot_macro_auc', float('nan')):.3f}"
    )


def _register_commands() -> None:
    """Commands that live in their own modules (index/search, ui)."""
    from cmr import cli_search, cli_ui

    cli_search.register(app)
    cli_ui.register(app)


_register_commands()
