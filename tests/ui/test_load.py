"""The UI under load, as users use it (issue 12), short: ``bench/ui_load.py`` for ~20 s with 3 browser sessions.

One ``cmr ui`` (Streamlit on 127.0.0.1, clinician role, ``CMR_TRUSTED_PROXIES=127.0.0.1``) on the UI tests'
engine setup; each Chromium session sends its own ``X-Forwarded-User`` and loops: open the app, search, open a
study, open the case sets page, export (CSV, then ZIP); no round starts after 20 s, a started one is finished.
Asserted: no action fails (timeout, exception or error
message on the page), no traceback in the server log, every session completed each kind of action, and each
session's audit rows per kind equal the actions it completed (search, view_study, export). The two-minute,
8-session version is ``bench/ui_load.py --sessions 8 --seconds 120``.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np

from bench.ui_load import AUDITED, audit_counts, audit_mismatches, make_case_set, run_load
from tests.fixtures_engine import EngineData
from tests.ui.live import require_chromium, serve

SESSIONS = 3
SECONDS = 20


def test_sessions_search_open_and_export_at_once_every_action_audited(engine_data: EngineData,
                                                                       tmp_path: Path) -> None:
    require_chromium()
    run_id = uuid.uuid4().hex[:8]
    case_set = f"Load test {run_id}"
    make_case_set(engine_data.url, case_set, n=3)
    env = {**engine_data.env(), "CMR_ROLE": "clinician", "CMR_TRUSTED_PROXIES": "127.0.0.1",
           "CMR_USER": f"load-{run_id}"}
    log = tmp_path / "streamlit.log"
    with serve(env, log) as (url, _):
        # timeout: the first search loads the model and the index (~20 s on 2 busy cores)
        result = run_load(url, SESSIONS, SECONDS, case_set, run_id=run_id, timeout_s=90, whole_rounds=True)
    print("\n" + result.table())

    assert not result.errors(), "\n".join(f"{t.session} {t.action}: {t.error}" for t in result.errors())
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    for user in result.users:
        done = result.done(user)
        assert all(done[action] >= 1 for action in (*AUDITED, "case sets")), (user, done)
    assert not audit_mismatches(result, audit_counts(engine_data.url, result.users))
    # and nothing was audited under the server's own user: every row names the session's user
    assert not sum(audit_counts(engine_data.url, [f"load-{run_id}"])[f"load-{run_id}"].values())


def test_sessions_making_the_same_new_preview_at_once(tmp_path: Path) -> None:
    """The UI's sessions are threads of one process; 8 of them rendering the same new result card at once made
    the preview's temporary file under one name, and all but one rename failed ("Something went wrong")."""
    from cmrclip.clips import clip_path, save_clip
    from search.previews import card_preview
    from tests.cmrclip.synthetic import make_study

    labels = {"dilated": True, "reduced_function": True, "lge": False}
    views = make_study(np.random.default_rng(0), labels, ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax")).views
    path = clip_path(tmp_path / "clips", "1.2.3.4", "v1")
    save_clip(path, views)
    barrier, results, errors = threading.Barrier(8), [], []

    def render() -> None:
        barrier.wait()
        try:
            results.append(card_preview(str(path), "1.2.3.4", tmp_path / "previews"))
        except Exception as exc:  # collected: an exception in a thread would not fail the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=render) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8 and all(r and r == results[0] for r in results)
    assert [p.name for p in (tmp_path / "previews").iterdir()] == ["1.2.3.4_v1.gif"], "a temporary file is left"
