"""``cmr index`` and ``cmr search``: registered on the main app by ``register(app)``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from search.fusion import DEFAULT_MODE

console = Console()
SNIPPET_CHARS = 80


def _fail(message: str) -> None:
    """One line on stderr (no wrapping, no markup from the message), then exit 1."""
    from rich.markup import escape

    from cmr.cli import err

    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def index(
    batch_size: Annotated[int, typer.Option(min=1, help="Studies per model batch.")] = 32,
    rebuild: Annotated[bool, typer.Option(help="Rebuild the indexes from the vector store from scratch.")] = False,
    workers: Annotated[int | None, typer.Option(min=0, help="Clip-decoding workers (default: settings).")] = None,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="--engine ray: auto, ray://head:10001; default a local Ray instance.")
    ] = None,
    actors: Annotated[int | None, typer.Option(min=1, help="--engine ray: model actors (default one per GPU).")] = None,
) -> None:
    """Embed every study and report the checkpoint has not embedded yet, then update the FAISS indexes."""
    from cmr.cli import _ready_url, _settings
    from indexer.index_job import run_index
    from search.checkpoints import resolve_checkpoint

    s = _settings()
    url = _ready_url()
    try:
        checkpoint = resolve_checkpoint(s)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if engine not in ("local", "ray"):
        _fail(f"unknown engine {engine!r}; use local or ray")
    if engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            _fail("--engine ray needs Ray: pip install 'cmr-retrieval[ray]'")
        from indexer.ray_engine import RayOptions, run_index_ray

        try:
            run = run_index_ray(
                url,
                checkpoint,
                s.index_dir,
                rebuild=rebuild,
                device=s.device,
                options=RayOptions(address=address, concurrency=actors, batch_size=batch_size),
            )
        except RuntimeError as exc:  # some partitions still failing; the rest are stored
            _fail(str(exc))
    else:
        run = run_index(
            url,
            checkpoint,
            s.index_dir,
            batch_size=batch_size,
            rebuild=rebuild,
            device=s.device,
            workers=s.workers if workers is None else workers,
        )
    table = Table(title=f"index (checkpoint {run.checkpoint_hash}, {run.device})", show_header=False)
    for what, t in (("studies", run.studies), ("reports", run.reports)):
        table.add_row(
            f"{what} embedded / failed", f"{t.done} / {len(t.failed)} in {t.wall:.1f} s ({t.per_second:.1f}/s)"
        )
    for b in run.builds:
        detail = f"{b.action}: {b.index_key or '-'}, {b.n_vectors} vectors (+{b.added}) in {b.seconds:.1f} s"
        table.add_row(f"{b.kind} index", detail)
    console.print(table)


def search(
    query: Annotated[str | None, typer.Argument(help="What to look for, in words.")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of hits.")] = 10,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", "-f", help="Catalog filter, e.g. age>=50, sex=F, views=sax,lge_sax.")
    ] = None,
    mode: Annotated[str, typer.Option(help="Signal: video, report or both (fused).")] = DEFAULT_MODE,
    similar: Annotated[str | None, typer.Option(help="Find studies similar to this study UID instead.")] = None,
    exclude_same_patient: Annotated[bool, typer.Option(help="With --similar: skip the same patient.")] = False,
    negation: Annotated[bool, typer.Option(help='Subtract negated phrases ("no LGE") from the query.')] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the archive by text (or by example with --similar)."""
    from catalog.migrate import upgrade
    from cmr.cli import _settings
    from search.engine import MODES, Engine
    from search.errors import DatabaseUnavailable, SearchError
    from search.filters import parse_filters
    from search.query_text import normalise_query

    try:
        # Bad input is refused before the model is loaded.
        if similar is None:
            normalise_query(query if query is not None else "")
        elif query:
            _fail("give either a query or --similar, not both")
        if mode not in MODES:
            _fail(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        filters = parse_filters(filter_ or [])
        settings = _settings()
        url = settings.resolved_database_url()
        upgrade(url)  # a fresh data folder gets its schema, as every cmr command does
        engine = Engine.open(settings, url=url)
        if similar is not None:
            hits = engine.similar(similar, k=k, exclude_same_patient=exclude_same_patient, filters=filters)
        else:
            hits = engine.query(query or "", k=k, mode=mode, filters=filters, negation=negation)
    except (SearchError, DatabaseUnavailable) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps([h.to_json() for h in hits], indent=1))
        return
    _print_table(hits, title=f"similar to {similar}" if similar else query or "")


def _print_table(hits: list, title: str) -> None:
    table = Table("rank", "score", "signals", "accession", "date", "age/sex", "views", "impression", title=title)
    for h in hits:
        impression = " ".join((h.impression or "").split())
        if len(impression) > SNIPPET_CHARS:
            impression = impression[: SNIPPET_CHARS - 1] + "…"
        table.add_row(
            str(h.rank),
            f"{h.score:.3f}",
            "+".join(h.signals),
            h.accession or "",
            h.study_date.isoformat() if h.study_date else "",
            f"{h.patient_age if h.patient_age is not None else '?'}/{h.patient_sex or '?'}",
            " ".join(h.views),
            impression,
        )
    console.print(table)
    if not hits:
        console.print("no matching studies")


def register(app: typer.Typer) -> None:
    """Add ``index`` and ``search`` to the ``cmr`` app."""
    app.command("index")(index)
    app.command("search")(search)
