"""The ``cmr`` command line. Commands only parse arguments, call into the packages and print results."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cmr.common import backfill_facts, console, fail, ready_url, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# transformers prints a "BertModel LOAD REPORT" table (the text tower's unused pooler weights) and a progress bar
# each time the model loads: warnings of no use to a reader. `cmr -v` brings them back. Set before transformers is
# imported, and inherited by `cmr ui`'s server.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = typer.Typer(
    help="Natural-language case retrieval for cardiac MRI.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold patient data
)
db_app = typer.Typer(help="Catalog database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        os.environ["TRANSFORMERS_VERBOSITY"] = "info"
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or migrate the catalog schema (Alembic)."""
    from catalog.db import DatabaseUnavailable, safe_url
    from migrations.apply import current_revision, upgrade

    url = settings().resolved_database_url()
    try:
        upgrade(url, revision)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    read = backfill_facts(url) if revision == "head" else 0
    console.print(f"catalog at {safe_url(url)} is at revision {current_revision(url)}"
                  + (f"; facts read from {read} reports" if read else ""))


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
        out, studies, sites=site or None, seed=seed, fault_rate=faults, progress=True, workers=settings().workers
    )
    rate = summary.n_studies / max(summary.seconds, 1e-9)
    console.print(
        f"wrote {summary.n_studies} studies, {summary.n_files} files, {summary.bytes / 1e6:.1f} MB to {out} "
        f"in {summary.seconds:.1f} s ({rate:.2f} studies/s, {summary.bytes / 1e6 / summary.n_studies:.2f} MB/study)"
    )


@app.command()
def studies(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every study of the catalog (a researcher sees study numbers, not UIDs or accession numbers)."""
    from catalog.db import session_scope
    from catalog.errors import list_errors
    from catalog.facts import facts_of_studies
    from catalog.studies import list_studies
    from cmr.common import audit
    from search import privacy
    from search.understanding import facts_text

    role = settings().role
    url = ready_url()
    with session_scope(url) as session:
        errors: dict[str, str] = {}
        for e in list_errors(session):
            if e.study_uid and e.study_uid not in errors:
                errors[e.study_uid] = e.reason
        listed = list_studies(session)
        facts = facts_of_studies(session, [st.id for st in listed])
        rows = [privacy.study_list_record(st, errors.get(st.study_uid), role, facts.get(st.id)) for st in listed]
    audit(url, "list_studies", n_results=len(rows), detail="cli studies")
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(*rows[0]) if rows else Table("study", "site", "manufacturer", "views", "state", "error", "facts")
    for r in rows:
        r = {**r, "facts": facts_text(r["facts"])}
        table.add_row(*(" ".join(v) if isinstance(v, list) else str(v) if v is not None else "" for v in r.values()))
    console.print(table)


@app.command()
def errors(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List ingest errors (stage, kind, reason; path and study UID for clinicians only: folders name patients)."""
    from catalog.db import session_scope
    from catalog.errors import error_rows
    from cmr.common import audit
    from search import privacy

    role = settings().role
    url = ready_url()
    with session_scope(url) as session:
        rows = [privacy.error_record(e, role) for e in error_rows(session)]
    audit(url, "list_errors", n_results=len(rows), detail="cli errors")
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(*(rows[0] if rows else ("stage", "kind", "reason")))
    for r in rows:
        table.add_row(*(str(v) if v is not None else "" for v in r.values()))
    console.print(table)


@app.command()
def clip(
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID.")],
    out: Annotated[Path, typer.Option(help="PNG (strip) or GIF (animation) to write.")] = Path("clip.png"),
) -> None:
    """Write a picture of a study's clips, to check the preprocessing crop."""
    from catalog.db import session_scope
    from catalog.studies import study_by_uid
    from cmrclip.clips import load_clip
    from search.previews import clip_gif, clip_strip

    url = ready_url()
    with session_scope(url) as session:
        study = study_by_uid(session, study_uid)
        path = study.clip_path if study else None
    if study is None:
        fail(f"no study {study_uid} in the catalog")
    if not path or not Path(path).exists():
        fail(f"study {study_uid} has no clip yet: run `cmr ingest` first")
    views = load_clip(Path(path))
    if out.suffix.lower() == ".gif":
        out.write_bytes(clip_gif(views))
    else:
        clip_strip(views).save(out)
    console.print(f"wrote {out}")


def _records(url: str):
    from catalog.db import session_scope
    from catalog.studies import study_records
    from cmrclip.train.records import StudyRecord

    with session_scope(url) as session:
        rows = study_records(session)
    return [StudyRecord(**{**r, "clip_path": Path(r["clip_path"])}) for r in rows]


def _run_dir(checkpoint_dir: Path, config, parent_hash: str | None) -> Path:
    """Where a run lives: named by config, variant and seed, and by the parent's hash when it fine-tunes one."""
    name = f"{config.config_name}-{config.variant}-s{config.seed}"
    return checkpoint_dir / (f"{name}-ft-{parent_hash}" if parent_hash else name)


@app.command()
def train(
    config: Annotated[str | None, typer.Option(
        help="Model config name (cmrclip/model_configs); default cpu-small, or --init's.")] = None,
    variant: Annotated[str, typer.Option(help="full | static | single_view (baselines).")] = "full",
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    batch_size: Annotated[int, typer.Option(min=2, help=(
        "Studies per step. 16 suits archives of a few hundred studies (more steps per epoch: on the 240-study "
        "phantom it beat 32); give a larger one for thousands of studies on a GPU."))] = 16,
    lr: Annotated[float, typer.Option()] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (resume later).")] = None,
    impression_prob: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of steps captioned by the impression; the rest by report sentences.")] = 0.5,
    init: Annotated[Path | None, typer.Option(
        help="Start from this checkpoint's weights (fine-tune); its config must match.")] = None,
    augment: Annotated[bool, typer.Option(help="Train-time augmentation (jitter and TorchIO MR artefacts).")] = True,
    artefact_prob: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Share of series given one TorchIO MR artefact (default: AugmentConfig's).")] = None,
    activate: Annotated[bool, typer.Option(help="Make the result the checkpoint index/search use.")] = True,
    restart: Annotated[bool, typer.Option(help="Start over instead of resuming an earlier run's state.")] = False,
) -> None:
    """Contrastive training on (study clips, report impression) pairs of the training split."""
    from cmrclip.checkpoint import read_checkpoint_meta
    from cmrclip.train.augment import AugmentConfig
    from cmrclip.train.config import TrainConfig
    from cmrclip.train.loop import train as run_training
    from indexer.clips.preprocess import PREPROCESS_VERSION

    s = settings()
    url = ready_url()
    records = _records(url)
    if not records:
        fail("no preprocessed studies in the catalog: run `cmr ingest` first")
    parent = None
    if init is not None:
        if not init.is_file():
            fail(f"--init checkpoint {init} does not exist")
        try:
            parent = read_checkpoint_meta(init)
        except (ValueError, KeyError, RuntimeError) as exc:
            fail(f"--init {init} is not a readable CMR-CLIP checkpoint: {exc}")
    run = TrainConfig(
        out_dir=Path("."),  # set below, from the resolved config
        config_name=config or (parent.training.get("config_name", "cpu-small") if parent else "cpu-small"),
        variant=variant, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        holdout_site=s.holdout_site or None, preprocess_version=PREPROCESS_VERSION, impression_prob=impression_prob,
        augment=AugmentConfig(enabled=augment, **({} if artefact_prob is None else {"artefact_prob": artefact_prob})),
        init=init,
        device=s.device, max_steps=max_steps, resume=not restart,
    )
    run.out_dir = _run_dir(s.checkpoint_dir, run, parent.hash if parent else None)
    try:
        path = run_training(records, run)
    except ValueError as exc:
        fail(str(exc))
    if activate and variant == "full" and path.is_file():
        (s.checkpoint_dir / "ACTIVE").write_text(str(path.resolve()))
    console.print(f"checkpoint: {path}")


def _search_modes(ground_truth: Path, withhold: float) -> None:
    from cmrclip.train.ground_truth import load_truth
    from cmrclip.train.search_modes import (
        by_example,
        examples_table,
        markdown_table,
        planted_errors_found,
        precision_at_k,
    )
    from search.engine import Engine

    if not ground_truth.is_file():
        fail(f"ground truth {ground_truth} does not exist")
    engine = Engine.open(settings(), url=ready_url())
    truth = load_truth(ground_truth)
    rows = precision_at_k(engine, truth, withhold=withhold, compound=True)
    console.print(markdown_table(rows, 10, withhold), markup=False)
    console.print("\n" + examples_table(by_example(engine, truth), 10), markup=False)
    found = planted_errors_found(engine, truth)
    console.print(f"\ndiscrepancy list: {found['planted_in_top']} of its top {found['k']} are planted report errors "
                  f"({found['planted_in_archive']} planted in the archive, {found['listed']} listed)", markup=False)
    for line in found["found"]:
        console.print(f"  {line}", markup=False)


@app.command("eval")
def evaluate_cmd(
    ground_truth: Annotated[Path, typer.Option(help="ground_truth.csv of the phantom archive.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint (default: the active one).")] = None,
    split: Annotated[str, typer.Option(help="train | val | test | external")] = "test",
    site: Annotated[str | None, typer.Option(help="Only studies of this institution.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.md, plots and metrics.json.")] = Path("eval"),
    json_out: Annotated[Path | None, typer.Option(help="Also write the metrics JSON here.")] = None,
    baselines: Annotated[bool, typer.Option(help="Train and evaluate static / single-view baselines.")] = True,
    search_modes: Annotated[bool, typer.Option(
        help="Instead: precision@10 of diagnosis and compound queries for each search mode, on the served index."
    )] = False,
    withhold: Annotated[float, typer.Option(min=0.0, max=1.0, help="--search-modes: share of reports withheld.")] = 0.5,
    realdata: Annotated[Path | None, typer.Option(
        help="Folder of real DICOM stacks to place among the split (default: ../shared/realdata when present)."
    )] = None,
    real_stacks: Annotated[bool, typer.Option(help="Add the section on real stacks (--realdata).")] = True,
) -> None:
    """Zero-shot, few-shot, probe and retrieval metrics against ground truth, with baselines, as a report.

    A section places real stacks (zero-shot scores, nearest phantom studies): ingested into a throwaway catalog."""
    if search_modes:
        _search_modes(ground_truth, withhold)
        return
    import contextlib
    import csv
    import shutil
    from dataclasses import replace

    from cmr.realdata import real_stacks as ingest_real
    from cmrclip.checkpoint import read_checkpoint_meta
    from cmrclip.train.config import TrainConfig
    from cmrclip.train.evaluate import evaluate
    from cmrclip.train.loop import train as run_training

    s = settings()
    checkpoint = checkpoint or s.active_checkpoint()
    if checkpoint is None or not checkpoint.is_file():
        fail("no checkpoint: run `cmr train` first (or pass --checkpoint)")
    if not ground_truth.is_file():
        fail(f"ground truth {ground_truth} does not exist")
    if realdata is not None and not realdata.is_dir():
        fail(f"real data folder {realdata} does not exist")
    url = ready_url()
    records = _records(url)
    with ground_truth.open(newline="") as fh:
        truth = {row["study_uid"]: row for row in csv.DictReader(fh)}
    meta = read_checkpoint_meta(checkpoint)
    trained = {}
    if baselines:  # trained as the model was (same settings, same --init parent), on other inputs
        parent_hash = meta.lineage[0]["hash"] if meta.lineage else None
        for variant in ("static", "single_view"):
            baseline = TrainConfig.from_training(meta.training, out_dir=Path("."), variant=variant, device=s.device)
            baseline.out_dir = _run_dir(s.checkpoint_dir, baseline, parent_hash)
            try:  # a finished baseline of the same settings is reused
                trained[variant] = run_training(records, baseline)
            except ValueError:  # one of other settings (e.g. an older model config) is trained again
                try:
                    trained[variant] = run_training(records, replace(baseline, resume=False))
                except ValueError as exc:
                    fail(f"baseline {variant}: {exc}")
    placing = ingest_real(realdata, checkpoint_preprocess=meta.training.get("preprocess_version"))
    with placing if real_stacks else contextlib.nullcontext() as real:
        try:
            results = evaluate(checkpoint, records, truth, split=split, site=site, baselines=trained, out_dir=out,
                               device=s.device, realdata=real)
        except ValueError as exc:
            fail(str(exc))
    if json_out:
        shutil.copy(out / "metrics.json", json_out)
    console.print(
        f"report: {out / 'report.md'}  zero-shot macro AUC {results.get('zero_shot_macro_auc', float('nan')):.3f}"
    )
    placed = results.get("realdata")
    if placed:
        console.print(f"real stacks ({placed['source']}): " + (placed.get("summary") or "; ".join(placed["notes"])),
                      markup=False)


def _register_commands() -> None:
    """Commands that live in their own modules (ingest, index/search, ui)."""
    from cmr import cli_ingest, cli_receive, cli_search, cli_ui

    cli_ingest.register(app)
    cli_receive.register(app)
    cli_search.register(app)
    cli_ui.register(app)


_register_commands()
