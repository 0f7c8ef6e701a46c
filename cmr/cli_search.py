"""``cmr index``, ``cmr search`` and ``cmr qa``: registered on the main app by ``register(app)``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cmr.common import audit, console, fail, ready_url, settings
from search import privacy
from search.fusion import DEFAULT_MODE

SNIPPET_CHARS = 60
WIDE = 140  # narrower terminals get the compact layout


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
    from indexer.index.drivers import DRIVERS, EmbedError, RayOptions
    from indexer.index.job import run_index

    s = settings()
    url = ready_url()
    try:
        checkpoint = s.serving_checkpoint()
    except FileNotFoundError as exc:
        fail(str(exc))
    if engine not in DRIVERS:
        fail(f"unknown engine {engine!r}; use one of {', '.join(DRIVERS)}")
    try:
        run = run_index(
            url,
            checkpoint,
            s.index_dir,
            batch_size=batch_size,
            rebuild=rebuild,
            device=s.device,
            workers=s.workers if workers is None else workers,
            engine=engine,
            ray=RayOptions(address=address, concurrency=actors),
        )
    except EmbedError as exc:  # Ray missing, or some partitions still failing (the rest are stored)
        fail(str(exc))
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
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits (1 to 1000).")] = 10,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", "-f", help="Catalog filter, e.g. age>=50, sex=F, views=sax,lge_sax.")
    ] = None,
    mode: Annotated[str, typer.Option(help="Signal: video, report or both (fused).")] = DEFAULT_MODE,
    similar: Annotated[str | None, typer.Option(help="Find studies similar to this study UID instead.")] = None,
    exclude_same_patient: Annotated[bool, typer.Option(help="With --similar: skip the same patient.")] = False,
    negation: Annotated[bool, typer.Option(help='Subtract negated phrases ("no LGE") from the query.')] = False,
    like: Annotated[list[str] | None, typer.Option(
        help="Query by example: a study number (#125 or 125) to find more like; repeat for several.")] = None,
    unlike: Annotated[list[str] | None, typer.Option(help="A study number to find less like; repeatable.")] = None,
    like_set: Annotated[str | None, typer.Option(
        help="Query by example: every study of this case set (by name) is a positive example.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the archive by text, by example studies (--like, --unlike, --like-set; with or without text), or
    for one study's neighbours (--similar). What is shown depends on CMR_ROLE (see the README's privacy part);
    every search is audited with CMR_USER (else the OS user) and the number of hits."""
    from search.engine import MODES, Engine, check_k
    from search.errors import DatabaseUnavailable, SearchError
    from search.filters import parse_filters
    from search.query_text import normalise_query

    s = settings()
    try:
        # Bad input is refused before the model is loaded.
        check_k(k)
        example_refs = bool(like or unlike or like_set)
        if similar is not None and (query or example_refs):
            fail("give either --similar, or a query and/or examples, not both")
        if similar is None and not example_refs:
            normalise_query(query if query is not None else "")
        elif query:
            normalise_query(query)
        if mode not in MODES:
            fail(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        filters = parse_filters(filter_ or [])
        url = ready_url()
        examples = _examples(url, like or [], unlike or [], like_set) if example_refs else None
        engine = Engine.open(s, url=url)
        if similar is not None:
            hits = engine.similar(similar, k=k, exclude_same_patient=exclude_same_patient, filters=filters)
        else:
            hits = engine.query(query or "", k=k, mode=mode, filters=filters, negation=negation, examples=examples)
    except (SearchError, DatabaseUnavailable) as exc:
        fail(str(exc))
    if similar is not None:
        audit(url, "similar", query=f"similar to study {_study_number(url, similar) or '?'}",
              filters=filters.to_json(), n_results=len(hits),
              detail=f"cli k={k} exclude_same_patient={exclude_same_patient}")
    else:
        described = " · ".join(p for p in (query, examples.describe() if examples else "") if p)
        audit(url, "search", query=described, filters=filters.to_json(), n_results=len(hits),
              detail=f"cli mode={mode} k={k}" + (" by example" if examples else ""))
    if as_json:
        print(json.dumps([privacy.hit_record(h, s.role) for h in hits], indent=1))
        return
    if similar:
        title = f"similar to {similar if privacy.is_clinician(s.role) else 'the given study'}"
    else:
        title = " · ".join(p for p in (query, examples.describe() if examples else "") if p)
    _print_table(hits, title=title or "", role=s.role)


def qa(
    k: Annotated[int, typer.Option("-k", "--k", help="Number of studies listed (1 to 1000).")] = 20,
    finding: Annotated[str | None, typer.Option(help="Only this finding, e.g. lge_present.")] = None,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", "-f", help="Catalog filter, e.g. site=..., age>=50.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Studies whose images disagree with their report (report says no LGE, images score LGE 0.9), strongest
    first: a second reader for quality assurance and teaching (see search.qa). Audited like a search."""
    from search.engine import Engine, check_k
    from search.errors import DatabaseUnavailable, SearchError
    from search.filters import parse_filters

    s = settings()
    try:
        check_k(k)
        filters = parse_filters(filter_ or [])
        url = ready_url()
        engine = Engine.open(s, url=url)
        found = engine.discrepancies(k=k, finding=finding, filters=filters)
    except (SearchError, DatabaseUnavailable) as exc:
        fail(str(exc))
    audit(url, "qa", query=f"discrepancies{f' of {finding}' if finding else ''}", filters=filters.to_json(),
          n_results=len(found), detail=f"cli k={k}")
    if as_json:
        print(json.dumps([{**privacy.hit_record(h, s.role), "finding": d.finding, "report_says": d.report,
                           "image_probability": round(d.image_probability, 4),
                           "confidence": round(d.confidence, 4)} for h, d in found], indent=1))
        return
    _print_table([h for h, _ in found], title="images and report disagree (confidence, strongest first)",
                 role=s.role, empty="no study's images disagree with its report beyond the threshold")


def _examples(url: str, like: list[str], unlike: list[str], like_set: str | None):
    """``search.examples.Examples`` from study numbers ("#125" or "125") and a case set's name."""
    from catalog import casesets
    from catalog.db import session_scope
    from search.examples import Examples

    def number(ref: str) -> int:
        text = ref.strip().lstrip("#")
        if not text.isdigit():
            fail(f"{ref!r} is not a study number (e.g. 125 or #125, as search results show it)")
        return int(text)

    positives = [number(r) for r in like]
    if like_set is not None:
        with session_scope(url) as session:
            found = casesets.find(session, like_set)
            if found is None:
                fail(f"no case set named {like_set!r} (the UI's Case sets page lists them)")
            members = [e.study_id for e in casesets.entries(session, found.id)]
        if not members:
            fail(f"case set {like_set!r} is empty")
        positives += members
    return Examples(like=tuple(dict.fromkeys(positives)), unlike=tuple(dict.fromkeys(number(r) for r in unlike)))


def _study_number(url: str, study_uid: str) -> int | None:
    """The catalog's number of a study (audited instead of its UID, which the audit log need not hold)."""
    from catalog.db import session_scope
    from catalog.studies import study_key

    with session_scope(url) as session:
        found = study_key(session, study_uid)
    return found[0] if found else None


def _print_table(hits: list, title: str, role: str, empty: str = "no matching studies") -> None:
    """A table when the terminal is wide (``WIDE`` columns or more); else one compact block per hit: a line of who
    and the score, the wrapped "why", and a one-line report snippet, so nothing is squeezed to a word per line."""
    clinician = privacy.is_clinician(role)
    width = console.width
    if width >= WIDE:
        who = ("accession", "date") if clinician else ("study", "year")
        table = Table("rank", "score", "signals", *who, "age/sex", "views", "why", "impression", title=title)
        for hit in hits:
            h = privacy.for_role(hit, role)
            table.add_row(str(h.rank), f"{h.score:.3f}", "+".join(h.signals), *_who(h, role), _age_sex(h, role),
                          " ".join(h.views), h.why, _snippet(h.impression, SNIPPET_CHARS))
        console.print(table)
    else:
        if title:
            console.print(Text(title, style="bold"), overflow="fold")
        for hit in hits:
            h = privacy.for_role(hit, role)
            study, date = _who(h, role)
            head = " · ".join(p for p in (study, date, _age_sex(h, role), "+".join(h.signals)) if p)
            console.print(Text(f"{h.rank:>2}. {h.score:.3f}  {head}"), overflow="fold", highlight=False)
            if h.why:
                console.print(_indented(h.why, width), style="cyan", markup=False, highlight=False)
            snippet = _snippet(h.impression, width - 5)
            if snippet:
                console.print(_indented(snippet, width), style="dim", markup=False, highlight=False)
    if not hits:
        console.print(empty)


def _who(h, role: str) -> tuple[str, str]:
    clinician = privacy.is_clinician(role)
    return ((h.accession or "") if clinician else f"#{h.study_id}",
            privacy.date_text(h.study_date, role) if h.study_date else "")


def _age_sex(h, role: str) -> str:
    return f"{privacy.age_value(h.patient_age, role) if h.patient_age is not None else '?'}/{h.patient_sex or '?'}"


def _snippet(text: str | None, chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _indented(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(width - 1, 20), initial_indent="    ", subsequent_indent="    "))


def register(app: typer.Typer) -> None:
    """Add ``index`` and ``search`` to the ``cmr`` app."""
    app.command("index")(index)
    app.command("search")(search)
    app.command("qa")(qa)
