"""Search: free text, example studies ("more like these", thumbs up / down on results), or "similar to this study",
in a grid of result cards. The URL holds the whole search."""

from __future__ import annotations

import streamlit as st

from catalog import casesets, studies
from search.errors import BadQuery, UnknownStudy
from search.examples import Examples
from search.fusion import DEFAULT_MODE
from ui import results, state, widgets
from ui.urlstate import K_CHOICES, MODES, SearchState

EXAMPLES = (
    "asymmetric septal hypertrophy with mid-wall LGE",
    "dilated left ventricle with severely reduced ejection fraction",
    "subendocardial LGE in the LAD territory",
    "normal study",
    "pericardial effusion",
)
MODE_LABELS = {"both": "Video + report", "video": "Video", "report": "Report"}
COLUMNS = 3
P = "s_"  # widget key prefix of this page


def _normalised(params: dict) -> dict[str, list[str]]:
    return {k: [v] if isinstance(v, str) else list(v) for k, v in params.items()}


def _seed_from_url(options: studies.FilterOptions) -> None:
    """Show the search the URL names, unless the URL is the one this page wrote itself on the last run.

    A URL without a search (the navigation menu) brings back the last search of this session.
    """
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    if params == st.session_state.get("_search_url"):
        return
    last = st.session_state.get("_search_last")
    search = last if not params and last is not None else SearchState.from_params(params)
    widgets.seed({f"{P}query": search.query, f"{P}mode": search.mode, f"{P}k": search.k,
                  **widgets.filter_widget_values(search.filters, options, P)}, force=True)
    st.session_state[f"{P}similar"] = search.similar_to
    st.session_state[f"{P}like"], st.session_state[f"{P}unlike"] = list(search.like), list(search.unlike)


def _use_example() -> None:
    example = st.session_state.pop(f"{P}example", None)
    if example:
        st.session_state[f"{P}query"] = example
        st.session_state[f"{P}similar"] = None


def _text_search() -> None:
    st.session_state[f"{P}similar"] = None


def _feedback(study_id: int, positive: bool) -> None:
    """Thumbs up / down on a result: it becomes a positive / negative example of the search."""
    like, unlike = st.session_state.setdefault(f"{P}like", []), st.session_state.setdefault(f"{P}unlike", [])
    for group in (like, unlike):
        if study_id in group:
            group.remove(study_id)
    (like if positive else unlike).append(study_id)
    st.session_state[f"{P}similar"] = None


def _clear_examples() -> None:
    st.session_state[f"{P}like"], st.session_state[f"{P}unlike"] = [], []


def _show_similar(study_id: int) -> None:
    st.session_state[f"{P}similar"] = study_id


options = results.filter_options(state.database_url(), state.role())
_seed_from_url(options)
filters = widgets.filter_sidebar(options, P)
widgets.show_flashes()

st.title("Case search")
with st.form("search_form", border=False):
    c_query, c_mode, c_k, c_go = st.columns([5, 3, 1, 1.2], vertical_alignment="bottom")
    c_query.text_input("Describe the findings you are looking for", key=f"{P}query",
                       placeholder="e.g. asymmetric septal hypertrophy with mid-wall LGE")
    c_mode.segmented_control("Match on", MODES, format_func=MODE_LABELS.get, key=f"{P}mode", required=True)
    c_k.selectbox("Results", K_CHOICES, key=f"{P}k")
    c_go.form_submit_button("Search", type="primary", icon=":material/search:", on_click=_text_search)
st.pills("Examples", EXAMPLES, key=f"{P}example", on_change=_use_example, label_visibility="collapsed")

search = SearchState(
    query=st.session_state[f"{P}query"].strip(),
    mode=st.session_state[f"{P}mode"] or DEFAULT_MODE,
    k=st.session_state[f"{P}k"],
    similar_to=st.session_state.get(f"{P}similar"),
    filters=filters,
    like=tuple(st.session_state.get(f"{P}like") or ()),
    unlike=tuple(st.session_state.get(f"{P}unlike") or ()),
)
params = search.to_params()
st.query_params.from_dict(params)
st.session_state["_search_url"] = _normalised(params)
st.session_state["_search_last"] = search

by_example = search.similar_to is None and bool(search.like or search.unlike)
if search.similar_to is None and not search.query and not by_example:
    st.info("Type what you are looking for, in the words of a report, or pick an example. Filters are in the "
            "sidebar; the address bar keeps the search, so you can bookmark or share it.", icon=":material/info:")
    st.stop()

engine = state.require_engine()
key = results.engine_key(engine)
role = state.role()
if search.similar_to is not None:
    with state.db() as session:
        source = studies.study_detail(session, search.similar_to)
    if source is None:
        st.warning(f"Study #{search.similar_to} is not in the catalog (it may have been withdrawn).")
        st.button("Back to text search", on_click=_text_search)
        st.stop()
    head, exclude_col, back = st.columns([4, 2, 1.3], vertical_alignment="center")
    head.subheader(f"Studies similar to Study #{search.similar_to}")
    exclude = exclude_col.toggle("Exclude the same patient", key=f"{P}exclude", value=True)
    back.button("Back to text search", icon=":material/arrow_back:", on_click=_text_search)
    try:
        hits = results.similar_hits(engine, key, source.study_uid, search.k, filters, exclude, role)
    except UnknownStudy:
        st.warning(f"Study #{search.similar_to} has no embedding yet: run `cmr index` to include it.")
        st.stop()
    state.audit_once("search", (search, exclude), "similar", query=f"similar to study #{search.similar_to}",
                     filters=filters.to_json(), n_results=len(hits), detail=f"k={search.k}")
    terms = ""
elif by_example:
    head, back = st.columns([5, 1.3], vertical_alignment="center")
    back.button("Clear examples", icon=":material/close:", on_click=_clear_examples)
    try:
        examples = Examples(like=search.like, unlike=search.unlike)
        head.markdown(f"**Search by example** · {examples.describe()}"
                      + (f" · with “{search.query}”" if search.query else ""))
        hits = results.example_hits(engine, key, search.query, search.mode, search.k, filters, search.like,
                                    search.unlike, role)
    except (BadQuery, UnknownStudy) as exc:
        st.warning(str(exc), icon=":material/edit_note:")
        st.stop()
    state.audit_once("search", search, "search", query=" · ".join(p for p in (search.query, examples.describe())
                                                                   if p),
                     filters=filters.to_json(), n_results=len(hits), detail=f"mode={search.mode} k={search.k} "
                     "by example")
    terms = search.query
else:
    try:
        hits = results.text_hits(engine, key, search.query, search.mode, search.k, filters, role)
    except BadQuery as exc:
        st.warning(str(exc), icon=":material/edit_note:")
        st.stop()
    state.audit_once("search", search, "search", query=search.query, filters=filters.to_json(),
                     n_results=len(hits), detail=f"mode={search.mode} k={search.k}")
    terms = search.query

if not hits:
    st.info("No study matches these filters. Widen the age or date range, or remove a required view.",
            icon=":material/filter_alt_off:")
    st.stop()

st.caption(f"{len(hits)} studies, best match first"
           + (f" · filters: {', '.join(filters.to_json())}" if not filters.is_empty() else ""))
with state.db() as session:
    sets = casesets.list_case_sets(session)
for start in range(0, len(hits), COLUMNS):
    for column, hit in zip(st.columns(COLUMNS), hits[start : start + COLUMNS], strict=False):
        with column:
            widgets.result_card(hit, role=role, query=terms, case_sets=sets, on_similar=_show_similar,
                                on_feedback=None if search.similar_to is not None else _feedback)
