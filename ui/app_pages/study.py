"""Study: every view playable (native images at the acquisition's frame rate, or the model's clips), the full
report, report facts beside the model's reading, metadata, nearest neighbours, a link to the PACS viewer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from catalog import casesets, studies
from catalog.facts import facts_record
from search import native, previews, privacy
from search.errors import SearchError
from search.filters import Filters
from search.understanding import SHORT, facts_rows
from ui import results, state, widgets
from ui.highlight import escape_markdown

NEIGHBOURS = 6
SEARCH_PAGE = "app_pages/search.py"


@st.cache_data(ttl=600, max_entries=16, show_spinner="Loading the cines…")
def _sequences(clip_path: str | None) -> dict[str, np.ndarray] | None:
    views = previews.load_views(clip_path)
    return previews.view_sequences(views) if views else None


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _gif(clip_path: str, label: str) -> bytes:
    return previews.sequence_gif(_sequences(clip_path)[label])


@st.fragment
def _frame_viewer(clip_path: str, label: str, seq: np.ndarray) -> None:
    """Frame by frame; a fragment, so moving the slider reruns only this block."""
    kind = "image" if label.startswith("LGE") else "frame"
    if len(seq) > 1:
        index = st.slider(f"{kind.capitalize()} ({len(seq)})", 1, len(seq), 1, key=f"frame_{label}") - 1
    else:
        index = 0
    st.image(previews.frame_png(seq, index), caption=f"{label} · {kind} {index + 1} of {len(seq)}")


@st.cache_data(ttl=600, max_entries=8, show_spinner="Reading the native images…")
def _native(study_id: int, clip_path: str | None) -> list[native.NativeCine]:
    with state.db() as session:
        series = studies.series_frames(session, study_id)
    return native.native_cines(series, native.crop_center(clip_path))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _native_gif(study_id: int, clip_path: str | None, index: int, show_crop: bool) -> bytes:
    return _native(study_id, clip_path)[index].gif(show_crop=show_crop)


def _native_views(detail: studies.StudyDetail) -> bool:
    """The acquisition's cines, every pixel at its frame rate; False when none of the files can be read."""
    cines = _native(detail.study_id, detail.clip_path)
    if not cines:
        return False
    show_crop = st.toggle("Show the model's crop", key="native_crop",
                          help="The square the model's 64-pixel clips are cut from (around the heart it located)")
    for index, (tab, cine) in enumerate(zip(st.tabs([c.label for c in cines]), cines, strict=True)):
        with tab:
            t, h, w = cine.frames.shape
            spacing = f" · {cine.spacing_mm[0]:.2f} mm/pixel" if cine.spacing_mm else ""
            st.image(_native_gif(detail.study_id, detail.clip_path, index, show_crop),
                     caption=f"{w} × {h} pixels{spacing} · {t} frames at {cine.frame_ms:.0f} ms")
            if show_crop and cine.crop is None:
                st.caption("No crop recorded for this study (preprocessed before crops were kept).")
    return True


def _views(detail: studies.StudyDetail) -> None:
    if st.segmented_control("Images", ("Native", "Model clips"), default="Native", key="images_kind",
                            help="Native: the acquisition as stored. Model clips: the 64-pixel crops the model "
                                 "sees.") != "Model clips":
        if _native_views(detail):
            return
        st.caption("The native images of this study cannot be read here (files moved or not on this server); "
                   "showing the model's clips.")
    sequences = _sequences(detail.clip_path)
    if not sequences:
        st.warning("The cines of this study are not available: its clip file is missing or it was not "
                   "preprocessed. Run `cmr ingest` on its archive to make it.", icon=":material/videocam_off:")
        return
    for tab, label in zip(st.tabs(list(sequences)), sequences, strict=True):
        with tab:
            play, step = st.columns(2)
            with play:
                st.image(_gif(detail.clip_path, label), caption=f"{label} · playing")
            with step:
                _frame_viewer(detail.clip_path, label, sequences[label])


def _report(detail: studies.StudyDetail) -> None:
    st.subheader("Report")
    if not detail.report_text:
        st.caption("No report on file for this study.")
        return
    if detail.impression:
        st.markdown(f"**Impression.** {escape_markdown(detail.impression)}")
    with st.container(border=True):
        for paragraph in detail.report_text.split("\n"):
            if paragraph.strip():
                st.markdown(escape_markdown(paragraph))


def _model_reading(detail: studies.StudyDetail) -> None:
    """The images' calibrated per-finding probabilities beside what the report says of each finding."""
    st.subheader("Model reading")
    engine, reason = state.engine_or_reason()
    if engine is None:
        st.caption(reason)
        return
    probs = engine.image_probabilities(detail.study_id)
    if probs is None:
        st.caption("This study has no embedding yet: run `cmr index` to include it.")
        return
    said = (facts_record(detail.facts) or {}).get("findings", {}) if detail.facts is not None else {}
    rows = []
    for finding, p in probs.items():
        report = said.get(finding, "not mentioned" if detail.report_text else "no report")
        disagree = (report == "absent" and p >= 0.5) or (report == "present" and p < 0.5)
        rows.append((SHORT.get(finding, finding.replace("_", " ")), f"{p:.2f}", report, "⚠" if disagree else ""))
    st.dataframe(pd.DataFrame(rows, columns=["finding", "images", "report", ""]), hide_index=True,
                 width="stretch")
    st.caption("Images: the model's probability of each finding, calibrated on this archive's reports. ⚠: the "
               "images lean the other way from the report (the Report QA page ranks such studies).")


def _neighbours(detail: studies.StudyDetail, role: str) -> None:
    st.subheader("Nearest neighbours")
    engine, reason = state.engine_or_reason()
    if engine is None:
        st.info(reason, icon=":material/info:")
        return
    try:
        hits = results.similar_hits(engine, results.engine_key(engine), detail.study_uid, NEIGHBOURS, Filters(),
                                    True, role)
    except SearchError as exc:
        st.info(f"No neighbours: {exc}", icon=":material/info:")
        return
    if not hits:
        st.caption("No other patient's study is close to this one.")
        return
    for column, hit in zip(st.columns(len(hits)), hits, strict=True):
        with column, st.container(border=True):
            widgets.preview(hit)
            st.markdown(f"**{privacy.study_number(hit)}** · {hit.score:.3f}")
            st.caption(f"{privacy.age_sex_text(hit, role)} · {(hit.impression or 'no report')[:90]}")
            st.page_link("app_pages/study.py", label="Open", icon=":material/open_in_new:",
                         query_params={"study": str(hit.study_id)})


raw = st.query_params.get("study", "")
study_id = int(raw) if raw.isdigit() else None
if study_id is None:
    st.title("Study")
    st.info("Open a study from the search results, or add `?study=<number>` to the address.", icon=":material/info:")
    st.page_link(SEARCH_PAGE, label="Go to search", icon=":material/search:")
    st.stop()

with state.db() as session:
    detail = studies.study_detail(session, study_id)
    sets = casesets.list_case_sets(session)
if detail is None:
    st.title(f"Study #{study_id}")
    st.warning("This study is not in the catalog (it may have been withdrawn).", icon=":material/block:")
    st.stop()

role = state.role()
detail = privacy.for_role(detail, role)
state.audit_once("study", study_id, "view_study", detail=f"study #{study_id}", n_results=1)
widgets.show_flashes()

st.title(f"Study #{detail.study_id} · {privacy.date_text(detail.study_date, role)}")
st.caption(privacy.patient_line(detail, role) + " · " + privacy.age_sex_text(detail, role) + " · "
           + privacy.scanner_text(detail))
main, side = st.columns([2.2, 1], gap="large")
with main:
    _views(detail)
    _report(detail)
with side:
    st.subheader("Study")
    st.table(pd.DataFrame(privacy.metadata_rows(detail, role), columns=["field", "value"]), border="horizontal",
             hide_index=True, hide_header=True)
    actions = st.container(horizontal=True)
    with actions:
        st.page_link(SEARCH_PAGE, label="Similar cases", icon=":material/join_inner:",
                     query_params={"similar": str(detail.study_id)})
        if privacy.is_clinician(role):
            st.link_button("Open in PACS viewer", state.settings().viewer_url_template.format(
                study_uid=detail.study_uid), icon=":material/open_in_new:")
    widgets.case_set_popover(detail.study_id, sets, key=f"study_{detail.study_id}")
    st.subheader("Report facts")
    rows = facts_rows(facts_record(detail.facts)) if detail.facts is not None else []
    if rows:
        st.table(pd.DataFrame(rows, columns=["fact", "value"]), border="horizontal", hide_index=True,
                 hide_header=True)
        st.caption("Read from the report by rules (cmrclip.language); a finding the report does not mention is "
                   "left out.")
    else:
        st.caption("No report on file." if not detail.report_text else "The report states none of the facts read.")
    if detail.series:
        st.caption("Series: " + "; ".join(
            f"{s.view.upper()} {s.description or ''} ({s.n_slices} × {s.n_phases})" for s in detail.series))
    _model_reading(detail)
_neighbours(detail, role)
