"""CMR case search: the Streamlit entry script (``cmr ui``, or ``streamlit run ui/app.py``).

Pages live in ``ui/app_pages/``; this script sets the page up, checks login, shows who is working in which role,
and runs the page chosen in the navigation.

Authentication is not done here; wire one of these two in front of the app.

1. **Reverse proxy** (nginx, Apache, oauth2-proxy, the hospital's SSO gateway). The proxy authenticates the user
   and forwards the user name in the ``X-Forwarded-User`` header, which the audit log records. ``cmr ui`` binds
   to the loopback address (``--server.address 127.0.0.1``) so only the proxy can reach it; make the proxy
   *overwrite* any ``X-Forwarded-User`` sent by the browser, and name the proxy's address in
   ``CMR_TRUSTED_PROXIES`` (e.g. ``127.0.0.1``): the header is ignored unless the request comes from there.
   Proxy WebSockets for ``/_stcore/stream``. Example::

       location / {
           auth_request /oauth2/auth;
           auth_request_set $user $upstream_http_x_auth_request_user;
           proxy_set_header X-Forwarded-User $user;
           proxy_pass http://127.0.0.1:8501;
           proxy_http_version 1.1;
           proxy_set_header Upgrade $http_upgrade;
           proxy_set_header Connection "upgrade";
       }

2. **Streamlit's OIDC login** (``st.login``). Put the identity provider into ``.streamlit/secrets.toml`` in
   the folder ``cmr ui`` is started from::

       [auth]
       redirect_uri = "https://cmr-search.hospital.example/oauth2callback"
       cookie_secret = "<long random string>"
       client_id = "<client id>"
       client_secret = "<client secret>"
       server_metadata_url = "https://login.hospital.example/.well-known/openid-configuration"

   With an ``[auth]`` section present every page requires login, and the audit log records the user's e-mail.

The role (``CMR_ROLE``: ``clinician`` or ``researcher``) is a setting of the server, not of the user: run a
separate researcher instance (its own port and proxy route) for research access, so no one can switch role.
"""

from __future__ import annotations

import logging

import streamlit as st

from catalog.db import DatabaseUnavailable
from ui import state

log = logging.getLogger(__name__)

st.set_page_config(page_title="CMR case search", page_icon=":material/cardiology:", layout="wide")
state.require_login()

pages = [
    st.Page("app_pages/search.py", title="Search", icon=":material/search:", default=True),
    st.Page("app_pages/study.py", title="Study", icon=":material/ecg_heart:"),
    st.Page("app_pages/case_sets.py", title="Case sets", icon=":material/collections_bookmark:"),
    st.Page("app_pages/cohort.py", title="Cohort", icon=":material/groups:"),
    st.Page("app_pages/qa.py", title="Report QA", icon=":material/rule:"),
    st.Page("app_pages/status.py", title="Status", icon=":material/monitor_heart:"),
]
page = st.navigation(pages)
state.note_page(page.url_path)
st.sidebar.caption(f":material/person: {state.current_user()} · {state.role()}")

try:
    page.run()
except DatabaseUnavailable as exc:
    st.error(f"The catalog database is unavailable: {exc}. Check `CMR_DATABASE_URL`, or run `cmr db upgrade`.",
             icon=":material/database_off:")
except Exception:  # the page's own messages cover expected failures; anything else is logged, not shown
    log.exception("page %s failed", page.title)
    st.error("Something went wrong on this page. The details are in the server log; please report the time "
             "and what you did.", icon=":material/error:")
