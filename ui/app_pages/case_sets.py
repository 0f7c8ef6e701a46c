"""Case sets: create, rename, delete; a note per case; reorder; export as CSV or as a ZIP of pages and previews."""

from __future__ import annotations

import re
from collections.abc import Callable

import streamlit as st

from catalog import casesets, studies
from catalog.casesets import CaseSetEntry, CaseSetError, CaseSetInfo
from catalog.studies import StudyDetail
from search import privacy
from search.examples import MAX_EXAMPLES
from search.previews import card_preview
from ui import exports, state, widgets
from ui.highlight import escape_markdown

SELECTED = "cs_selected"


def _run(action: Callable[..., object], *args: object, done: str | None = None) -> None:
    """Run a case set operation in its own transaction; report the outcome as a toast."""
    try:
        with state.db() as session:
            action(session, *args)
    except CaseSetError as exc:
        widgets.flash(str(exc), ":material/error:")
        return
    if done:
        widgets.flash(done)


def _create() -> None:
    name = st.session_state["cs_new_name"]
    try:
        with state.db() as session:
            st.session_state[SELECTED] = casesets.create(session, name, st.session_state["cs_new_desc"],
                                                         owner=state.current_user())
    except CaseSetError as exc:
        widgets.flash(str(exc), ":material/error:")
        return
    widgets.flash(f"Created “{name.strip()}”")


def _rename(case_set_id: int) -> None:
    _run(casesets.rename, case_set_id, st.session_state[f"cs_rename_{case_set_id}"], done="Renamed")


def _delete(case_set_id: int, name: str) -> None:
    _run(casesets.delete, case_set_id, done=f"Deleted “{name}”")
    st.session_state.pop(SELECTED, None)


def _save_note(case_set_id: int, study_id: int) -> None:
    _run(casesets.set_note, case_set_id, study_id, st.session_state[f"cs_note_{case_set_id}_{study_id}"].strip())


def _audit_export(kind: str, case_set: CaseSetInfo, n: int) -> None:
    state.write_audit("export", n_results=n, detail=f"case set {kind}: “{case_set.name}” (#{case_set.id})")


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "case-set"


def _sidebar(sets: list[CaseSetInfo]) -> CaseSetInfo | None:
    with st.sidebar:
        st.subheader("Case sets")
        ids = [c.id for c in sets]
        if st.session_state.get(SELECTED) not in ids:
            st.session_state[SELECTED] = ids[0] if ids else None
        names = {c.id: f"{c.name} · {c.n_items}" for c in sets}
        chosen = st.radio("Case set", ids, format_func=names.get, key=SELECTED, label_visibility="collapsed")
        with st.form("cs_create", clear_on_submit=True):
            st.text_input("New case set", key="cs_new_name", placeholder="name, e.g. HCM teaching")
            st.text_input("Description", key="cs_new_desc", placeholder="optional")
            st.form_submit_button("Create", icon=":material/add:", on_click=_create)
    return next((c for c in sets if c.id == chosen), None)


def _case_row(case_set: CaseSetInfo, n: int, total: int, entry: CaseSetEntry, detail: StudyDetail,
              role: str) -> None:
    with st.container(border=True):
        num, thumb, info, note, buttons = st.columns([0.3, 1.3, 3, 2.6, 1.1], vertical_alignment="center")
        num.markdown(f"### {n}")
        with thumb:
            widgets.preview(detail)
        with info:
            st.page_link("app_pages/study.py", label=f"{privacy.study_number(detail)} · "
                         f"{privacy.date_text(detail.study_date, role)} · {privacy.age_sex_text(detail, role)}",
                         query_params={"study": str(detail.study_id)})
            st.caption(privacy.patient_line(detail, role))
            st.markdown(escape_markdown(detail.impression) if detail.impression else ":gray[No report on file.]")
        key = f"cs_note_{case_set.id}_{detail.study_id}"
        st.session_state.setdefault(key, entry.note or "")
        note.text_area("Note", key=key, height=90, on_change=_save_note, args=(case_set.id, detail.study_id),
                       placeholder="teaching note for this case")
        with buttons:
            row = st.container(horizontal=True, gap="small")
            row.button("", key=f"cs_up_{detail.study_id}", icon=":material/arrow_upward:", help="Move up",
                       disabled=n == 1, on_click=_run, args=(casesets.move, case_set.id, detail.study_id, -1))
            row.button("", key=f"cs_down_{detail.study_id}", icon=":material/arrow_downward:", help="Move down",
                       disabled=n == total, on_click=_run, args=(casesets.move, case_set.id, detail.study_id, 1))
            row.button("", key=f"cs_rm_{detail.study_id}", icon=":material/delete:", help="Remove from the set",
                       on_click=_run, args=(casesets.remove_study, case_set.id, detail.study_id),
                       kwargs={"done": f"Removed {privacy.study_number(detail)}"})


EXPORTS = {"CSV": ("csv", "text/csv", ":material/table:"),
           "ZIP": ("zip", "application/zip", ":material/folder_zip:")}


def _prepare(kind: str, case_set: CaseSetInfo, cases: list[tuple[CaseSetEntry, StudyDetail]], role: str,
             signature: tuple) -> None:
    """Build an export file on the user's request and audit it; only then is it offered (and served) for download.

    Streamlit serves a download button's bytes at ``/media/<hash>`` from the moment the button is drawn, so the
    bytes must not exist before the audit row does.
    """
    if kind == "CSV":
        data = exports.case_set_csv(cases, role)
    else:
        preview_dir = state.settings().preview_dir
        data = exports.case_set_zip(case_set.name, cases, role,
                                    lambda d: card_preview(d.clip_path, d.study_uid, preview_dir))
    _audit_export(kind, case_set, len(cases))
    st.session_state[f"cs_export_{kind}"] = (signature, data)


def _exports(case_set: CaseSetInfo, cases: list[tuple[CaseSetEntry, StudyDetail]], role: str) -> None:
    """A "Prepare" button per format; the download button appears once the file is built (and audited)."""
    stem = _file_stem(case_set.name)
    signature = (case_set.id, case_set.name, role, tuple((e.study_id, e.position, e.note) for e, _ in cases))
    row = st.container(horizontal=True)
    for kind, (ext, mime, icon) in EXPORTS.items():
        prepared = st.session_state.get(f"cs_export_{kind}")
        if prepared is not None and prepared[0] == signature:
            row.download_button(f"Download {kind}", prepared[1], file_name=f"{stem}.{ext}", mime=mime, icon=icon,
                                on_click="ignore", key=f"cs_download_{kind}")
        else:
            label = "Export CSV" if kind == "CSV" else "Export ZIP (pages + previews)"
            row.button(label, icon=icon, on_click=_prepare, args=(kind, case_set, cases, role, signature),
                       disabled=not cases, key=f"cs_prepare_{kind}", help="Builds the file; the download follows")


def _manage(case_set: CaseSetInfo) -> None:
    with st.expander("Rename or delete"):
        with st.form("cs_rename_form", border=False):
            st.text_input("Name", value=case_set.name, key=f"cs_rename_{case_set.id}")
            st.form_submit_button("Rename", on_click=_rename, args=(case_set.id,))
        confirm = st.checkbox(f"Yes, delete “{case_set.name}” and its notes", key=f"cs_confirm_{case_set.id}")
        st.button("Delete case set", type="primary", disabled=not confirm, icon=":material/delete_forever:",
                  on_click=_delete, args=(case_set.id, case_set.name))


role = state.role()
with state.db() as session:
    sets = casesets.list_case_sets(session)
current = _sidebar(sets)
widgets.show_flashes()

st.title("Case sets")
if current is None:
    st.info("No case sets yet. Create one in the sidebar, then add studies from the search results or a study "
            "page (“Add to case set”).", icon=":material/info:")
    st.stop()

with state.db() as session:
    entries = casesets.entries(session, current.id)
    details = {d.study_id: privacy.for_role(d, role)
               for d in studies.study_details(session, [e.study_id for e in entries])}
cases = [(e, details[e.study_id]) for e in entries if e.study_id in details]

st.subheader(current.name)
st.caption(" · ".join(p for p in (current.description, f"by {current.owner}" if current.owner else None,
                                   f"{len(cases)} cases") if p))
_exports(current, cases, role)
if cases:  # query by example: the whole case set as the positive examples of a search
    st.page_link("app_pages/search.py", label="Find more like these", icon=":material/manage_search:",
                 query_params={"like": [str(e.study_id) for e, _ in cases][:MAX_EXAMPLES]},
                 help="Search the archive with these studies as examples; refine with thumbs up / down")
    if privacy.is_clinician(role):
        st.caption(f"To file this set in the PACS as teaching files (KOS, IHE TCE): `cmr kos \"{current.name}\"`")
_manage(current)
if not cases:
    st.info("This case set is empty. Add studies from the search results or a study page.", icon=":material/info:")
for n, (entry, detail) in enumerate(cases, start=1):
    _case_row(current, n, len(cases), entry, detail, role)
