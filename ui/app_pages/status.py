"""Status: model and index, studies by state, ingest errors by kind, database, and (clinicians) the audit log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from catalog import audit, studies
from catalog import builds as catalog_builds
from catalog import errors as catalog_errors
from catalog.db import safe_url
from search import privacy
from ui import state

AUDIT_ROWS = 50


def _engine_section() -> None:
    st.subheader("Model and index")
    engine, reason = state.engine_or_reason()
    if engine is None:
        st.warning(reason, icon=":material/warning:")
        with state.db() as session:
            builds = catalog_builds.active_index_builds(session)
        rows = [{"index": b.kind, "type": b.index_key, "vectors": b.n_vectors, "checkpoint": b.checkpoint_hash,
                 "built": b.created_at.strftime("%Y-%m-%d %H:%M")} for b in builds]
    else:
        status = engine.status()
        model, device = st.columns(2)
        model.metric("Model checkpoint", status["checkpoint_hash"], help=status["checkpoint_path"])
        device.metric("Device", status["device"] + (" · FAISS on GPU" if status["faiss_gpu"] else ""))
        rows = [{"index": kind, "type": ix["index_key"], "vectors": ix["n_vectors"], "dimensions": ix["dim"],
                 "checkpoint": ix["checkpoint_hash"], "built": str(ix["built_at"])[:16]}
                for kind, ix in status["indexes"].items()]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.button("Reload model and index", icon=":material/refresh:", on_click=state.reload_engine,
              help="After `cmr index` or `cmr train` has written a new index or checkpoint")


def _catalog_section(role: str) -> None:
    with state.db() as session:
        states = studies.state_counts(session)
        errors = catalog_errors.errors_by_kind(session)
    st.subheader("Studies")
    if states:
        for column, (name, n) in zip(st.columns(len(states)), sorted(states.items()), strict=True):
            column.metric(name.capitalize(), n)
    else:
        st.info("The catalog holds no studies yet: run `cmr ingest <archive folder>`.", icon=":material/info:")
    st.subheader("Ingest errors")
    if not errors:
        st.caption("None.")
    for kind, rows in errors.items():
        with st.expander(f"{kind.replace('_', ' ')} · {len(rows)}"):
            table = [privacy.error_record(e, role) for e in rows]
            st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")


def _audit_section() -> None:
    st.subheader("Latest audit entries")
    with state.db() as session:
        entries = audit.latest(session, AUDIT_ROWS)
    if not entries:
        st.caption("None yet.")
        return
    st.dataframe(pd.DataFrame([{
        "when": e.at.strftime("%Y-%m-%d %H:%M:%S"), "user": e.user, "role": e.role, "action": e.action,
        "query": e.query or "", "filters": ", ".join(f"{k}={v}" for k, v in (e.filters or {}).items()),
        "results": e.n_results, "detail": e.detail or "",
    } for e in entries]), hide_index=True, width="stretch")


role = state.role()
st.title("Status")
_engine_section()
_catalog_section(role)
st.subheader("Database")
st.code(safe_url(state.database_url()), language=None)
if privacy.is_clinician(role):
    _audit_section()
