"""Links from pseudonyms back to real identities, kept only where a site chooses to (``deid_keep_mapping``).

A separate table so that a research deployment simply has it empty (or drops it), and readable only through
:func:`reidentify`, which refuses every role but ``clinician``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import IdentityLink

KINDS = ("study", "patient", "accession")
READER_ROLE = "clinician"


def record_links(session: Session, links: Iterable[tuple[str, str, str]]) -> None:
    """Store (kind, pseudonym, original) links; a link already stored is left as it is."""
    for kind, pseudonym, original in links:
        if kind not in KINDS:
            raise ValueError(f"unknown identity kind {kind!r}; one of {KINDS}")
        if not original:
            continue
        exists = session.scalar(
            select(IdentityLink.id).where(IdentityLink.kind == kind, IdentityLink.pseudonym == pseudonym)
        )
        if exists is None:
            session.add(IdentityLink(kind=kind, pseudonym=pseudonym, original=original))


def reidentify(session: Session, kind: str, pseudonym: str, *, role: str) -> str | None:
    """The real identifier behind a pseudonym, for clinicians only; None where no link was kept.

    Raises
    ------
    PermissionError
        The role may not see identities.
    """
    if role != READER_ROLE:
        raise PermissionError(f"role {role!r} may not re-identify studies (only {READER_ROLE!r})")
    return session.scalar(
        select(IdentityLink.original).where(IdentityLink.kind == kind, IdentityLink.pseudonym == pseudonym)
    )
