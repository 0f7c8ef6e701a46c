"""Building blocks the pages share: the filter sidebar, result cards, the add-to-case-set popover, messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from catalog import casesets
from catalog.casesets import CaseSetError, CaseSetInfo
from catalog.studies import FilterOptions
from search import privacy
from search.filters import MODEL_VIEWS, Filters
from search.previews import card_preview
from search.understanding import FINDINGS, LGE_PATTERNS, SHORT
from ui.highlight import escape_markdown, highlight
from ui.state import current_user, db, settings

STUDY_PAGE = "app_pages/study.py"
ANY = "Any"
SEX_LABELS = {ANY: "Any", "F": "Female", "M": "Male", "O": "Other"}


def seed(values: dict[str, Any], force: bool = False) -> None:
    """Give widgets their starting values through session state (``force`` overrides what the user set)."""
    for key, value in values.items():
        if force or key not in st.session_state:
            st.session_state[key] = value


# --- filters ----------------------------------------------------------------------------------------------------


def _age_bounds(options: FilterOptions) -> tuple[int, int]:
    """A fixed 0..100 scale (wider if the catalog holds older patients), so a shared age filter keeps its meaning
    when the catalog grows."""
    return 0, max(100, options.age_range[1])


def filter_widget_values(filters: Filters, options: FilterOptions, prefix: str) -> dict[str, Any]:
    """The widget values that show ``filters`` (the inverse of ``filter_sidebar``)."""
    lo, hi = _age_bounds(options)
    return {
        f"{prefix}age": (max(lo, min(filters.age_min, hi)) if filters.age_min is not None else lo,
                         min(hi, max(filters.age_max, lo)) if filters.age_max is not None else hi),
        f"{prefix}sex": filters.sex or ANY,
        f"{prefix}dates": tuple(d for d in (filters.date_from, filters.date_to) if d is not None)
        if filters.date_from and filters.date_to else (),
        f"{prefix}inst": [v for v in filters.institutions if v in options.institutions],
        f"{prefix}mfr": [v for v in filters.manufacturers if v in options.manufacturers],
        f"{prefix}tesla": [v for v in filters.field_strengths if v in options.field_strengths],
        f"{prefix}views": [v for v in filters.views if v in MODEL_VIEWS],
        f"{prefix}report": bool(filters.has_report),
        **_fact_widget_values(filters, prefix),
    }


def _fact_widget_values(filters: Filters, prefix: str) -> dict[str, Any]:
    lo, hi = 0, 100
    lge, present = None, []
    for name, op, value in filters.facts:
        if name == "lvef" and op in (">=", ">"):
            lo = int(value)
        elif name == "lvef" and op in ("<=", "<"):
            hi = int(value)
        elif name == "lge":
            lge = value
        elif name in FINDINGS and value == "present":
            present.append(name)
    return {f"{prefix}lvef": (lo, hi), f"{prefix}lge": lge, f"{prefix}present": present}


def _fact_filters(sb: Any, prefix: str) -> tuple[tuple[str, str, Any], ...]:
    """The report-facts part of the filter panel: LVEF range, LGE pattern, findings the report states."""
    sb.caption("Report facts (studies whose report states them)")
    lvef = sb.slider("LVEF (%)", min_value=0, max_value=100, key=f"{prefix}lvef")
    lge = sb.selectbox("LGE pattern", LGE_PATTERNS, key=f"{prefix}lge", index=None, placeholder="any")
    present = sb.multiselect("Findings present", FINDINGS, key=f"{prefix}present", placeholder="any",
                             format_func=lambda f: SHORT.get(f, f))
    out: list[tuple[str, str, Any]] = []
    if lvef[0] > 0:
        out.append(("lvef", ">=", float(lvef[0])))
    if lvef[1] < 100:
        out.append(("lvef", "<=", float(lvef[1])))
    if lge:
        out.append(("lge", "=", lge))
    out += [(f, "=", "present") for f in present]
    return tuple(out)


def filter_sidebar(options: FilterOptions, prefix: str) -> Filters:
    """The filter widgets in the sidebar (seed them first with ``filter_widget_values``); returns the filters."""
    sb = st.sidebar
    sb.subheader("Filters")
    lo, hi = _age_bounds(options)
    age = sb.slider("Age (years)", min_value=lo, max_value=hi, key=f"{prefix}age")
    sex = sb.segmented_control("Sex", list(SEX_LABELS), format_func=SEX_LABELS.get, key=f"{prefix}sex",
                               required=True)
    dates: Sequence[dt.date] = ()
    if options.date_range:
        dates = sb.date_input("Study date", min_value=options.date_range[0], max_value=options.date_range[1],
                              key=f"{prefix}dates", format="YYYY-MM-DD")
    views = sb.multiselect("Required views", list(MODEL_VIEWS), format_func=lambda v: v.replace("_", " ").upper(),
                           key=f"{prefix}views", placeholder="any views")
    inst = sb.multiselect("Institution", options.institutions, key=f"{prefix}inst", placeholder="all")
    mfr = sb.multiselect("Manufacturer", options.manufacturers, key=f"{prefix}mfr", placeholder="all")
    tesla = sb.multiselect("Field strength", options.field_strengths, format_func=lambda v: f"{v:g} T",
                           key=f"{prefix}tesla", placeholder="all")
    report = sb.checkbox("Only studies with a report", key=f"{prefix}report")
    facts = _fact_filters(sb, prefix)
    complete_dates = len(dates) == 2  # the date picker yields one date while the user picks the second
    return Filters(
        age_min=age[0] if age[0] > lo else None,
        age_max=age[1] if age[1] < hi else None,
        sex=None if sex in (None, ANY) else sex,
        date_from=dates[0] if complete_dates else None,
        date_to=dates[1] if complete_dates else None,
        institutions=tuple(inst),
        manufacturers=tuple(mfr),
        field_strengths=tuple(tesla),
        views=tuple(views),
        has_report=True if report else None,
        facts=facts,
    )


# --- messages ---------------------------------------------------------------------------------------------------


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    """A toast that survives the rerun a callback triggers."""
    st.session_state.setdefault("_flash", []).append((message, icon))


def show_flashes() -> None:
    for message, icon in st.session_state.pop("_flash", []):
        st.toast(message, icon=icon)


# --- case sets --------------------------------------------------------------------------------------------------


def _add_from_form(study_id: int, key: str) -> None:
    add_to_case_set(study_id, st.session_state[f"addnote_{key}"], st.session_state[f"addset_{key}"],
                    st.session_state[f"addnew_{key}"])


def add_to_case_set(study_id: int, note: str, set_id: int | None, new_name: str) -> None:
    """Add a study to a case set (creating it when ``new_name`` is given) and say what happened."""
    try:
        with db() as session:
            if new_name.strip():
                set_id = casesets.create(session, new_name, owner=current_user())
            if set_id is None:
                raise CaseSetError("choose a case set or name a new one")
            added = casesets.add_study(session, set_id, study_id, note or None)
            name = next(c.name for c in casesets.list_case_sets(session) if c.id == set_id)
    except CaseSetError as exc:
        flash(f"Not added: {exc}", ":material/error:")
        return
    flash(f"Study #{study_id} added to “{name}”" if added else f"Study #{study_id} is already in “{name}”")


def case_set_popover(study_id: int, case_sets: Sequence[CaseSetInfo], key: str) -> None:
    """A popover button with a small form: pick a case set (or name a new one), add a note, add."""
    with st.popover("Add to case set", icon=":material/playlist_add:"), st.form(key=f"addform_{key}",
                                                                                 border=False, clear_on_submit=True):
        ids = [c.id for c in case_sets]
        names = {c.id: f"{c.name} ({c.n_items})" for c in case_sets}
        st.selectbox("Case set", ids, format_func=names.get, key=f"addset_{key}", placeholder="no case sets yet",
                     index=0 if ids else None)
        st.text_input("…or a new case set", key=f"addnew_{key}", placeholder="name")
        st.text_input("Note", key=f"addnote_{key}", placeholder="teaching point, optional")
        st.form_submit_button("Add", type="primary", on_click=_add_from_form, args=(study_id, key))


# --- result cards -----------------------------------------------------------------------------------------------


def preview(obj: Any, *, width: int | str = "stretch") -> None:
    """The animated cine preview of a hit or study, or a note that its clips are missing."""
    data = card_preview(obj.clip_path, obj.study_uid, settings().preview_dir)
    if data:
        st.image(data, width=width)
    else:
        st.caption(":material/videocam_off: No cine preview: this study's clips are missing or not preprocessed.")


def view_badges(views: Sequence[str]) -> str:
    return " ".join(f":blue-badge[{v.replace('_', ' ').upper()}]" for v in views) or ":gray-badge[no views]"


def signal_text(hit: Any) -> str:
    """Which signals matched and their cosine similarity (the fused "both" score is rank-based, not a cosine)."""
    scores = getattr(hit, "signal_scores", None) or {}
    return " · ".join(f"{kind} {scores[kind]:.2f}" if kind in scores else kind for kind in hit.signals) or "—"


def result_card(hit: Any, *, role: str, query: str, case_sets: Sequence[CaseSetInfo],
                on_similar: Callable[[int], None],
                on_feedback: Callable[[int, bool], None] | None = None) -> None:
    """One search result: preview, score, who/when, views, highlighted impression, actions."""
    with st.container(border=True):
        preview(hit)
        st.markdown(f"**#{hit.rank}** · score **{hit.score:.3f}** · :gray[{signal_text(hit)}]")
        st.markdown(f"{privacy.date_text(hit.study_date, role)} · {privacy.age_sex_text(hit, role)} · "
                    f"{privacy.study_number(hit)}")
        st.caption(privacy.patient_line(hit, role) if privacy.is_clinician(role) else privacy.scanner_text(hit))
        if privacy.is_clinician(role):
            st.caption(privacy.scanner_text(hit))
        st.markdown(view_badges(hit.views))
        if getattr(hit, "why", ""):
            st.caption(f":material/lightbulb: {escape_markdown(hit.why)}")
        if hit.impression:
            st.markdown(highlight(hit.impression, query))
        else:
            st.caption("No report on file.")
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.page_link(STUDY_PAGE, label="Open", icon=":material/open_in_new:",
                         query_params={"study": str(hit.study_id)})
            st.button("Similar", key=f"sim_{hit.study_id}", icon=":material/join_inner:",
                      on_click=on_similar, args=(hit.study_id,), help="Studies that look like this one")
            if on_feedback is not None:  # query by example: refine the search with this result
                st.button("", key=f"up_{hit.study_id}", icon=":material/thumb_up:", on_click=on_feedback,
                          args=(hit.study_id, True),
                          help="More like this: add it to the search as a positive example")
                st.button("", key=f"down_{hit.study_id}", icon=":material/thumb_down:", on_click=on_feedback,
                          args=(hit.study_id, False),
                          help="Less like this: add it to the search as a negative example")
            case_set_popover(hit.study_id, case_sets, key=str(hit.study_id))
