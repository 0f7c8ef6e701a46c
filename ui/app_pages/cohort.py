"""Cohort: a query, filters and a score threshold give a list of studies: count, distributions, CSV, saved."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from catalog import cohorts
from search import privacy
from search.errors import BadQuery, SearchError
from ui import exports, plots, results, state, widgets
from ui.urlstate import filters_from_json

P = "c_"
# Single signals only: their score is a cosine, so a threshold means the same for every query. "Both" ranks by
# a fused, rank-based score that has no fixed scale.
MODES = ("report", "video")
MODE_LABELS = {"report": "Report text", "video": "Video"}
DEFAULT_QUANTILE = 0.9  # a new query starts with the top 10 % selected
PREVIEW_ROWS = 500


def _load(cohort: cohorts.SavedCohort) -> None:
    """Put a saved cohort's query, mode, filters and threshold into the widgets."""
    options = results.filter_options(state.database_url(), state.role())
    filters = filters_from_json(cohort.filters)
    widgets.seed({f"{P}query": cohort.query, f"{P}mode": cohort.mode if cohort.mode in MODES else MODES[0],
                  **widgets.filter_widget_values(filters, options, P)}, force=True)
    st.session_state[f"{P}pending_threshold"] = cohort.threshold
    widgets.flash(f"Loaded cohort “{cohort.name}”")


def _save(query: str, mode: str, filters_json: dict, threshold: float, checkpoint_hash: str,
          study_ids: list[int]) -> None:
    name = st.session_state[f"{P}save_name"]
    try:
        with state.db() as session:
            cohorts.save(session, name=name, query=query, mode=mode, filters=filters_json, threshold=threshold,
                         checkpoint_hash=checkpoint_hash, study_ids=study_ids, owner=state.current_user())
    except ValueError as exc:
        widgets.flash(str(exc), ":material/error:")
        return
    state.write_audit("cohort_save", query=query, filters=filters_json, n_results=len(study_ids),
                      detail=f"cohort “{name.strip()}” mode={mode} threshold={threshold:.3f}")
    widgets.flash(f"Saved cohort “{name.strip()}” ({len(study_ids)} studies)")


def _prepare_export(query: str, filters_json: dict, selected: list, threshold: float, role: str,
                    signature: tuple) -> None:
    """Build the cohort CSV on request and audit it; only then is it drawn as a download (and served)."""
    data = exports.cohort_csv(selected, role)
    state.write_audit("export", query=query, filters=filters_json, n_results=len(selected),
                      detail=f"cohort CSV, threshold {threshold:.3f}")
    st.session_state[f"{P}export"] = (signature, data)


def _saved_cohorts(current_hash: str | None) -> None:
    with state.db() as session:
        saved = cohorts.list_cohorts(session)
    with st.expander(f"Saved cohorts ({len(saved)})", icon=":material/bookmarks:"):
        if not saved:
            st.caption("None yet: score a query, set the threshold and save it below the plots.")
            return
        table = pd.DataFrame([{
            "name": c.name, "query": c.query, "mode": c.mode, "filters": ", ".join(
                f"{k}={v}" for k, v in c.filters.items()) or "none", "threshold": round(c.threshold, 3),
            "studies": len(c.study_ids), "model": c.checkpoint_hash + ("" if c.checkpoint_hash == current_hash
                                                                      else " (other model)"),
            "saved": c.created_at.strftime("%Y-%m-%d %H:%M"), "by": c.owner or "",
        } for c in saved])
        st.dataframe(table, hide_index=True, width="stretch")
        by_id = {c.id: c for c in saved}
        pick, load = st.columns([3, 1], vertical_alignment="bottom")
        chosen = pick.selectbox("Cohort", list(by_id), format_func=lambda i: by_id[i].name, key=f"{P}load_pick")
        load.button("Load", icon=":material/upload:", on_click=_load, args=(by_id[chosen],))


def _threshold(scores: np.ndarray, signature: tuple) -> float:
    """The threshold slider; a new query (or a loaded cohort) resets it, a moved slider does not rerun search."""
    lo = math.floor(float(scores.min()) * 100) / 100
    hi = max(math.ceil(float(scores.max()) * 100) / 100, lo + 0.01)
    key = f"{P}threshold"
    pending = st.session_state.pop(f"{P}pending_threshold", None)
    if pending is not None or st.session_state.get(f"{P}signature") != signature:
        start = pending if pending is not None else float(np.quantile(scores, DEFAULT_QUANTILE))
        st.session_state[key] = float(min(max(round(start, 3), lo), hi))
        st.session_state[f"{P}signature"] = signature
    return st.slider("Score threshold (cosine similarity)", lo, hi, step=0.001, format="%.3f", key=key)


options = results.filter_options(state.database_url(), state.role())
widgets.seed({f"{P}query": "", f"{P}mode": MODES[0], **widgets.filter_widget_values(filters_from_json({}),
                                                                                    options, P)})
filters = widgets.filter_sidebar(options, P)
widgets.show_flashes()
role = state.role()

st.title("Cohort")
with st.form("cohort_form", border=False):
    c_query, c_mode, c_go = st.columns([6, 2, 1.3], vertical_alignment="bottom")
    c_query.text_input("Findings that define the cohort", key=f"{P}query",
                       placeholder="e.g. dilated left ventricle with reduced function")
    c_mode.segmented_control("Score on", MODES, format_func=MODE_LABELS.get, key=f"{P}mode", required=True)
    c_go.form_submit_button("Score studies", type="primary", icon=":material/calculate:")

engine, reason = state.engine_or_reason()
_saved_cohorts(engine.meta.hash if engine else None)
query, mode = st.session_state[f"{P}query"].strip(), st.session_state[f"{P}mode"]
if not query:
    st.info("Describe the cohort in the words of a report. Every study the filters allow is scored; the "
            "threshold then decides who is in.", icon=":material/info:")
    st.stop()
if engine is None:
    st.warning(reason, icon=":material/warning:")
    st.stop()

try:
    hits = results.all_scores(engine, results.engine_key(engine), query, mode, filters, role)
except BadQuery as exc:
    st.warning(str(exc), icon=":material/edit_note:")
    st.stop()
except SearchError as exc:
    st.warning(f"Cannot score on {MODE_LABELS[mode].lower()}: {exc}", icon=":material/warning:")
    st.stop()
filters_json = filters.to_json()
state.audit_once("cohort", (query, mode, filters), "search", query=query, filters=filters_json,
                 n_results=len(hits), detail=f"cohort scoring, mode={mode}")
if not hits:
    st.info("No study passes these filters. Widen them in the sidebar.", icon=":material/filter_alt_off:")
    st.stop()

scores = np.array([h.score for h in hits])
threshold = _threshold(scores, (query, mode, filters))
selected = [h for h in hits if h.score >= threshold]
ages = [h.patient_age for h in selected if h.patient_age is not None]
m_count, m_patients, m_age, m_female = st.columns(4)
m_count.metric("Studies in cohort", len(selected), help=f"of {len(hits)} studies scored")
m_patients.metric("Patients", len({h.patient_key for h in selected}))
m_age.metric("Median age", f"{np.median(ages):.0f} y" if ages else "—")
m_female.metric("Female", f"{100 * sum(h.patient_sex == 'F' for h in selected) / len(selected):.0f} %"
                if selected else "—")

left, right = st.columns(2)
left.pyplot(plots.score_histogram(scores, threshold))
right.pyplot(plots.age_sex_figure([h.patient_age for h in selected], [h.patient_sex for h in selected]))

if not selected:
    st.info("No study scores above the threshold. Lower it to include studies.", icon=":material/info:")
    st.stop()
rows = [{**privacy.export_record(h, role), "score": round(h.score, 3)} for h in selected[:PREVIEW_ROWS]]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=280)
study_ids = [h.study_id for h in selected]
export, save = st.columns(2, vertical_alignment="bottom")
signature = (query, mode, filters, threshold, role, tuple(study_ids))
prepared = st.session_state.get(f"{P}export")
if prepared is not None and prepared[0] == signature:
    export.download_button(f"Download CSV ({len(selected)} studies)", prepared[1], file_name="cohort.csv",
                           mime="text/csv", icon=":material/download:", on_click="ignore", key=f"{P}download")
else:
    export.button(f"Export CSV ({len(selected)} studies)", icon=":material/download:", key=f"{P}prepare",
                  on_click=_prepare_export, args=(query, filters_json, selected, threshold, role, signature),
                  help="Builds the file; the download follows")
with save.form("cohort_save", border=False, clear_on_submit=True):
    name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    name_col.text_input("Save as", key=f"{P}save_name", placeholder="cohort name")
    button_col.form_submit_button("Save cohort", icon=":material/bookmark_add:", on_click=_save,
                                  args=(query, mode, filters_json, threshold, engine.meta.hash, study_ids))
