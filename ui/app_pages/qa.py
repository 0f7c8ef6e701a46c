"""Report QA: studies whose images disagree with their report, strongest first (``search.qa``).

A second reader for quality assurance and teaching: "the report says no LGE, the images score LGE 0.91". Each row
opens the study, where the images' reading stands beside the report's facts. Every listing is audited.
"""

from __future__ import annotations

import streamlit as st

from search import privacy
from search.qa import FINDINGS
from search.understanding import SHORT
from ui import state
from ui.highlight import escape_markdown

LIMITS = (20, 50, 100)
ALL = "all findings"

st.title("Report QA")
st.caption("Studies whose images and report disagree, by the model's calibrated reading of the images, strongest "
           "first. A second reader to look again, not a diagnosis: the images' reading is weaker for findings it "
           "separates poorly, and such findings rank lower.")
engine = state.require_engine()
role = state.role()
c_finding, c_k = st.columns([3, 1])
finding = c_finding.selectbox("Finding", (ALL, *FINDINGS), format_func=lambda f: f if f == ALL else SHORT.get(
    f, f.replace("_", " ")), key="qa_finding")
k = c_k.selectbox("Studies", LIMITS, key="qa_k")
found = engine.discrepancies(k=k, finding=None if finding == ALL else finding)
state.audit_once("qa", (finding, k), "qa", query=f"discrepancies{'' if finding == ALL else ' of ' + finding}",
                 n_results=len(found), detail=f"k={k}")
if not found:
    st.info("No study's images disagree with its report beyond the threshold.", icon=":material/task_alt:")
    st.stop()
for hit, d in found:
    hit = privacy.for_role(hit, role)
    with st.container(border=True):
        head, link = st.columns([5, 1], vertical_alignment="center")
        head.markdown(f"**{privacy.study_number(hit)}** · {privacy.date_text(hit.study_date, role)} · "
                      f"{privacy.age_sex_text(hit, role)} · confidence **{d.confidence:.2f}**")
        link.page_link("app_pages/study.py", label="Open", icon=":material/open_in_new:",
                       query_params={"study": str(hit.study_id)})
        st.markdown(f":material/report: {escape_markdown(d.text())}")
        if hit.impression:
            st.caption(escape_markdown(hit.impression[:240]))
