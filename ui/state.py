"""Resources shared by every page: settings, the search engine (once per server), the catalog, the audit trail.

The engine is opened once per server process with ``st.cache_resource``: loading the model and the index is the
slow part, and search calls on it only read. A failure to open is not cached, so once ``cmr index`` has run a
page reload picks the index up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import streamlit as st
from sqlalchemy.orm import Session

from catalog import audit
from catalog.db import session_scope
from catalog.settings import Settings, get_settings

if TYPE_CHECKING:
    from search.engine import Engine

log = logging.getLogger(__name__)

# Header a reverse proxy sets to the authenticated user (see ui/app.py).
USER_HEADER = "X-Forwarded-User"


def settings() -> Settings:
    return get_settings()


def role() -> str:
    return settings().role


def proxy_user(headers: Mapping[str, str] | None, peer: str | None, trusted_proxies: str) -> str | None:
    """The user a trusted reverse proxy names in ``X-Forwarded-User``; None when no proxy is trusted
    (``trusted_proxies`` empty), the request did not come from one of them, or the header is absent."""
    trusted = {a.strip() for a in trusted_proxies.split(",") if a.strip()}
    if not trusted or peer not in trusted or not headers:
        return None
    value = (headers.get(USER_HEADER) or "").strip()
    return value or None


def current_user() -> str:
    """The authenticated user: Streamlit's OIDC login, else a trusted proxy's header, else the configured name."""
    if _oidc_configured() and st.user.is_logged_in:
        return str(st.user.get("email") or st.user.get("name") or settings().user)
    # Streamlit reports a loopback peer (127.0.0.1, ::1: a proxy on this machine, the documented set-up) as None
    peer = st.context.ip_address or "127.0.0.1"
    return proxy_user(st.context.headers, peer, settings().trusted_proxies) or settings().user


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file (StreamlitSecretNotFoundError subclasses it)
        return False


def require_login() -> None:
    """With an ``[auth]`` section in the secrets, show the login button until the user has signed in."""
    if _oidc_configured() and not st.user.is_logged_in:
        st.title("CMR case search")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()


def database_url() -> str:
    return settings().resolved_database_url()


@contextmanager
def db() -> Iterator[Session]:
    """A catalog session that commits on success (``catalog.db`` keeps one SQLAlchemy engine per URL)."""
    with session_scope(database_url()) as session:
        yield session


@st.cache_resource(show_spinner="Loading the model and the search index…")
def _open_engine(data_dir: str, database_url: str, checkpoint: str, _settings: Settings) -> Engine:
    """Keyed by the settings that choose the engine, so tests with several catalogs get one engine each."""
    from search.engine import Engine

    return Engine.open(_settings)


def engine_or_reason() -> tuple[Engine | None, str | None]:
    """The search engine, or a message saying what the user can do about its absence."""
    from search.errors import DatabaseUnavailable, IndexMismatch, IndexMissing, SearchError

    s = settings()
    try:
        return _open_engine(str(s.data_dir.resolve()), database_url(), s.checkpoint, s), None
    except IndexMissing as exc:
        log.info("no index: %s", exc)
        return None, (
            "There is no search index yet. Build it with `cmr index` (after `cmr ingest` has preprocessed the "
            "studies and `cmr train` has written a model checkpoint), then reload this page."
        )
    except IndexMismatch as exc:
        return None, f"The search index does not match the model checkpoint: {exc}."
    except DatabaseUnavailable as exc:
        return None, f"The catalog database is unavailable: {exc}."
    except SearchError as exc:
        return None, f"The search engine cannot start: {exc}"


def require_engine() -> Engine:
    """The engine, or a warning on the page and the end of this run."""
    engine, reason = engine_or_reason()
    if engine is None:
        st.warning(reason, icon=":material/warning:")
        st.stop()
    return engine


def reload_engine() -> None:
    """Forget the loaded engine (after `cmr index` rebuilt the index)."""
    _open_engine.clear()
    st.cache_data.clear()


def write_audit(action: str, **fields: Any) -> None:
    """One audit row for the current user and role (fields: query, filters, n_results, detail)."""
    with db() as session:
        audit.record(session, user=current_user(), role=role(), action=action, **fields)


def note_page(page: str) -> None:
    """Count arrivals on a page (called by the entry script), so coming back to a study is a new view."""
    if st.session_state.get("_page") != page:
        st.session_state["_page"] = page
        st.session_state["_visit"] = st.session_state.get("_visit", 0) + 1


def audit_once(slot: str, signature: Any, action: str, **fields: Any) -> None:
    """Audit an action once per distinct ``signature`` and page visit.

    Streamlit reruns the page on every click; without this, one search would be logged once per rerun.
    """
    key = f"_audited_{slot}"
    marker = (st.session_state.get("_visit"), signature)
    if st.session_state.get(key) != marker:
        write_audit(action, **fields)
        st.session_state[key] = marker
