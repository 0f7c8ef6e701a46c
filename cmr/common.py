"""What every ``cmr`` command shares: the consoles, the one-line failure, the settings and a migrated catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from catalog.settings import Settings

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """One readable line on stderr (no markup taken from the message) and a non-zero exit; never a traceback."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from catalog.settings import get_settings

    return get_settings()


def ready_url() -> str:
    """The catalog URL, migrated to the newest schema (so every command works on a fresh data folder)."""
    from catalog.db import DatabaseUnavailable
    from migrations.apply import upgrade

    url = settings().resolved_database_url()
    try:
        upgrade(url)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    backfill_facts(url)
    return url


def backfill_facts(url: str) -> int:
    """Read the facts of reports that have none yet (imported before the facts existed); a no-op query after."""
    from sqlalchemy.orm import sessionmaker

    from catalog.db import get_engine
    from indexer.reports import backfill_facts as backfill

    return backfill(sessionmaker(bind=get_engine(url), expire_on_commit=False))


def cli_user() -> str:
    """Who runs the command, for the audit log: ``CMR_USER`` when set, else the operating-system user."""
    import getpass

    s = settings()
    if "user" in s.model_fields_set:
        return s.user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no LOGNAME/USER
        return s.user


def audit(url: str, action: str, **fields: Any) -> None:
    """One audit row for this command's user and role (fields: query, filters, n_results, detail)."""
    from catalog import audit as audit_log
    from catalog.db import session_scope

    with session_scope(url) as session:
        audit_log.record(session, user=cli_user(), role=settings().role, action=action, **fields)
