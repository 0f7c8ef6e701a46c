"""UI load bench: N browser sessions search, open studies and export at once against one ``cmr ui``, for a while.

    .venv/bin/python bench/ui_load.py --sessions 8 --seconds 120 [--data-dir DIR] [--studies 12]

Without ``--data-dir`` a small engine setup is built first (``tests.fixtures_engine``: catalog, clips, tiny
model, indexes; ~20 s). The app runs as ``cmr ui`` runs it, on 127.0.0.1, with ``CMR_TRUSTED_PROXIES=127.0.0.1``
so each session's ``X-Forwarded-User`` header names its own user. One Chromium (Playwright, loopback only) holds
one browser context per session; each session loops until the time is up:

- load:       open the app (a new Streamlit session, as a new tab does)
- search:     type a query, press Search, wait for the result cards
- open study: click "Open" on a random card, wait for the study page
- case sets:  open the case sets page, pick the bench's case set
- export:     "Export CSV" (or ZIP, every other round), wait for the download button, download the file

An action fails when it times out or the page shows an exception or an error message. No new action starts
after ``--seconds``; a started one gets ``--action-timeout``. Printed: p50/p95/max seconds and errors per action,
the machine's load before and after, the server's CPU seconds, and the audit check: the audit rows of each
session's user per kind against the actions it completed (search -> search, open study -> view_study,
export -> export). tests/ui/test_load.py runs a short version of this with assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERIES = (
    "dilated left ventricle",
    "asymmetric septal hypertrophy with mid-wall LGE",
    "subendocardial LGE in the LAD territory",
    "normal study",
    "pericardial effusion",
    "reduced ejection fraction",
)
# the audit action each client action must leave behind
AUDITED = {"search": "search", "open study": "view_study", "export": "export"}
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'


@dataclass(frozen=True)
class Timing:
    session: str
    action: str
    seconds: float
    error: str | None = None


@dataclass
class LoadResult:
    timings: list[Timing] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    wall: float = 0.0

    def done(self, user: str | None = None) -> Counter:
        """Completed actions by name (of one session's user, or all)."""
        return Counter(t.action for t in self.timings if t.error is None and user in (None, t.session))

    def errors(self) -> list[Timing]:
        return [t for t in self.timings if t.error is not None]

    def table(self) -> str:
        rows = ["| action | done | errors | p50 s | p95 s | max s |", "|---|---:|---:|---:|---:|---:|"]
        for action in dict.fromkeys(t.action for t in self.timings):
            ok = sorted(t.seconds for t in self.timings if t.action == action and t.error is None)
            failed = sum(1 for t in self.timings if t.action == action and t.error is not None)
            stats = [f"{_quantile(ok, q):.2f}" if ok else "-" for q in (0.5, 0.95, 1.0)]
            rows.append(f"| {action} | {len(ok)} | {failed} | {' | '.join(stats)} |")
        return "\n".join(rows)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile (p95 of few samples is their max, not an interpolation)."""
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))]


# --- one session ------------------------------------------------------------------------------------------------------


async def _settled(page) -> None:
    """The script run is over (Streamlit's running indicator gone) and the page shows no error."""
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    errors = page.locator(ERROR_SELECTOR)
    if await errors.count():
        raise RuntimeError(f"the page shows an error: {(await errors.first.inner_text())[:200]!r}")


async def _load(page, url: str) -> None:
    await page.goto(url)
    await page.get_by_label("Describe the findings you are looking for").first.wait_for()
    await _settled(page)


async def _search(page, query: str) -> None:
    await page.get_by_label("Describe the findings you are looking for").fill(query)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_text(re.compile(r"^\d+ studies, best match first")).first.wait_for()
    await page.get_by_role("link", name="Open").first.wait_for()
    await _settled(page)


async def _open_study(page, rng: random.Random) -> None:
    links = page.get_by_role("link", name="Open")
    await links.nth(rng.randrange(await links.count())).click()
    await page.get_by_role("heading", name="Report", exact=True).first.wait_for()
    await page.get_by_role("heading", name="Nearest neighbours", exact=True).first.wait_for()
    await _settled(page)


async def _case_sets(page, url: str, case_set: str) -> None:
    await page.goto(f"{url}/case_sets")
    await page.get_by_role("heading", name="Case sets", exact=True).first.wait_for()
    await page.locator('[data-testid="stSidebar"]').get_by_text(
        re.compile(rf"^{re.escape(case_set)} · \d+$")).click()
    await page.get_by_role("heading", name=case_set, exact=True).first.wait_for()
    await _settled(page)


async def _export(page, kind: str) -> int:
    await page.get_by_role("button", name=f"Export {kind}").click()
    download_button = page.get_by_role("button", name=f"Download {kind}")
    await download_button.first.wait_for()
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")  # the rerun is over
    async with page.expect_download() as info:
        await download_button.click()
    download = await info.value
    size = Path(await download.path()).stat().st_size
    if size == 0:
        raise RuntimeError(f"the {kind} export is empty")
    await _settled(page)
    return size


async def _session(browser, url: str, user: str, case_set: str, deadline: float, seed: int, timeout_s: float,
                   out: list[Timing], whole_rounds: bool, rounds: int | None) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True,
                                        extra_http_headers={"X-Forwarded-User": user})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    rng = random.Random(seed)

    async def timed(action: str, step) -> bool:
        t0 = time.perf_counter()
        try:
            await step
        except Exception as exc:  # a timeout or an error on the page: recorded, the session goes on
            out.append(Timing(user, action, time.perf_counter() - t0, f"{type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0][:200]}"))
            return False
        out.append(Timing(user, action, time.perf_counter() - t0))
        return True

    try:
        n = 0
        while time.monotonic() < deadline and (rounds is None or n < rounds):
            n += 1
            steps = [("load", lambda: _load(page, url)),
                     ("search", lambda: _search(page, rng.choice(QUERIES))),
                     ("open study", lambda: _open_study(page, rng)),
                     ("case sets", lambda: _case_sets(page, url, case_set)),
                     ("export", lambda n=n: _export(page, "CSV" if n % 2 else "ZIP"))]
            for action, step in steps:
                if (not whole_rounds and time.monotonic() >= deadline) or not await timed(action, step()):
                    break  # out of time, or start the round again from a fresh page
    finally:
        await context.close()


async def _run(url: str, sessions: int, seconds: float, case_set: str, run_id: str, timeout_s: float,
               stagger_s: float, whole_rounds: bool, rounds: int | None) -> LoadResult:
    from playwright.async_api import async_playwright

    from tests.ui.live import CHROMIUM, CHROMIUM_ARGS

    result = LoadResult(users=[f"load-{run_id}-{i}" for i in range(sessions)])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            start = time.monotonic()
            deadline = start + seconds

            async def staggered(i: int, user: str) -> None:
                await asyncio.sleep(i * stagger_s)  # users do not all arrive in the same second
                await _session(browser, url, user, case_set, deadline, i, timeout_s, result.timings, whole_rounds,
                               rounds)

            await asyncio.gather(*(staggered(i, u) for i, u in enumerate(result.users)))
            result.wall = time.monotonic() - start
        finally:
            await browser.close()
    return result


def run_load(url: str, sessions: int, seconds: float, case_set: str, *, run_id: str | None = None,
             timeout_s: float = 90, stagger_s: float = 1.0, whole_rounds: bool = False,
             rounds: int | None = None) -> LoadResult:
    """Drive ``sessions`` browser sessions against the app at ``url`` for ``seconds`` (each as user
    ``load-<run_id>-<i>`` through ``X-Forwarded-User``); ``case_set`` names the case set they export.

    No action starts after ``seconds``; with ``whole_rounds`` a started round is finished (so every session does
    every action at least once); ``rounds`` caps the rounds per session.
    """
    return asyncio.run(_run(url, sessions, seconds, case_set, run_id or uuid.uuid4().hex[:8], timeout_s, stagger_s,
                            whole_rounds, rounds))


# --- set-up and checks ------------------------------------------------------------------------------------------------


def make_case_set(url: str, name: str, n: int = 4) -> None:
    """A case set of the first ``n`` studies for the sessions to export."""
    from catalog import casesets, studies
    from catalog.db import session_scope

    with session_scope(url) as session:
        set_id = casesets.create(session, name, "load bench")
        for detail in studies.list_studies(session)[:n]:
            casesets.add_study(session, set_id, detail.id, "load")


def audit_counts(url: str, users: list[str]) -> dict[str, Counter]:
    """Audit rows per user and action."""
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import AuditEntry

    out: dict[str, Counter] = {u: Counter() for u in users}
    with session_scope(url) as session:
        for user, action in session.execute(select(AuditEntry.user, AuditEntry.action)
                                            .where(AuditEntry.user.in_(users))):
            out[user][action] += 1
    return out


def audit_mismatches(result: LoadResult, audited: dict[str, Counter]) -> list[str]:
    """Where a session's audit rows of a kind differ from the actions it completed (empty when all agree)."""
    out = []
    for user in result.users:
        done = result.done(user)
        for action, kind in AUDITED.items():
            if audited[user][kind] != done[action]:
                out.append(f"{user}: {done[action]} × {action}, {audited[user][kind]} audit rows '{kind}'")
    return out


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--data-dir", type=Path, help="a CMR data folder with a catalog and indexes")
    parser.add_argument("--studies", type=int, default=12, help="studies of the built setup (no --data-dir)")
    parser.add_argument("--action-timeout", type=float, default=90)
    args = parser.parse_args()

    from tests.ui.live import serve

    with tempfile.TemporaryDirectory(prefix="ui-load-") as tmp:
        if args.data_dir is None:
            from tests.fixtures_engine import build_engine_data

            t0 = time.perf_counter()
            env = build_engine_data(Path(tmp), n_studies=args.studies).env()
            print(f"built a {args.studies}-study setup in {time.perf_counter() - t0:.0f} s")
        else:
            env = {"CMR_DATA_DIR": str(args.data_dir.resolve())}
            os.environ.update(env)
        from catalog.settings import get_settings

        os.environ.update(env)
        get_settings.cache_clear()
        url = get_settings().resolved_database_url()
        run_id = uuid.uuid4().hex[:8]
        case_set = f"Load bench {run_id}"
        make_case_set(url, case_set)
        env = {**env, "CMR_ROLE": "clinician", "CMR_TRUSTED_PROXIES": "127.0.0.1", "CMR_USER": f"load-{run_id}"}
        log = Path(tmp) / "streamlit.log"
        with serve(env, log) as (base, proc):
            load_before, cpu_before = os.getloadavg(), server_cpu_seconds(proc.pid)
            result = run_load(base, args.sessions, args.seconds, case_set, run_id=run_id,
                              timeout_s=args.action_timeout)
            load_after, cpu_after = os.getloadavg(), server_cpu_seconds(proc.pid)
        server_log = log.read_text()

    print(f"\n{args.sessions} sessions for {args.seconds:.0f} s (wall {result.wall:.0f} s), {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min); server CPU "
          f"{cpu_after - cpu_before:.0f} s\n")
    print(result.table())
    errors = result.errors()
    for t in errors[:20]:
        print(f"  error: {t.session} {t.action} after {t.seconds:.1f} s: {t.error}")
    mismatches = audit_mismatches(result, audit_counts(url, result.users))
    done = result.done()
    print(f"\naudit: {sum(done[a] for a in AUDITED)} audited actions, "
          + ("every one has its row" if not mismatches else f"{len(mismatches)} mismatches"))
    for line in mismatches:
        print(f"  {line}")
    tracebacks = server_log.count("Traceback")
    print(f"server log: {tracebacks} tracebacks")
    if tracebacks:
        start = server_log.rfind("\n", 0, server_log.index("Traceback")) + 1
        print(server_log[start:start + 6000])
    sys.exit(1 if errors or mismatches or tracebacks else 0)


if __name__ == "__main__":
    main()
