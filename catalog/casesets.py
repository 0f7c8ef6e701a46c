"""Case sets: named, ordered lists of studies with a note each, for teaching. Plain functions over a Session."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.models import CaseSet, CaseSetItem, Study


class CaseSetError(ValueError):
    """A case set operation that cannot be done (duplicate or empty name, unknown set); the message says why."""


@dataclass(frozen=True)
class CaseSetInfo:
    id: int
    name: str
    description: str | None
    owner: str | None
    n_items: int


@dataclass(frozen=True)
class CaseSetEntry:
    """One study of a case set, in order."""

    position: int
    study_id: int
    note: str | None


def _get(session: Session, case_set_id: int) -> CaseSet:
    case_set = session.get(CaseSet, case_set_id)
    if case_set is None:
        raise CaseSetError(f"case set {case_set_id} does not exist")
    return case_set


def _check_name(session: Session, name: str, exclude_id: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise CaseSetError("a case set needs a name")
    clash = session.scalar(select(CaseSet.id).where(CaseSet.name == name))
    if clash is not None and clash != exclude_id:
        raise CaseSetError(f"a case set named {name!r} already exists")
    return name


def list_case_sets(session: Session) -> list[CaseSetInfo]:
    counts = select(CaseSetItem.case_set_id, func.count().label("n")).group_by(CaseSetItem.case_set_id).subquery()
    stmt = select(CaseSet, counts.c.n).outerjoin(counts, counts.c.case_set_id == CaseSet.id).order_by(CaseSet.name)
    return [CaseSetInfo(c.id, c.name, c.description, c.owner, int(n or 0)) for c, n in session.execute(stmt)]


def find(session: Session, name: str) -> CaseSetInfo | None:
    """The case set of this name (surrounding spaces ignored, as names are stored), or None."""
    return next((c for c in list_case_sets(session) if c.name == name.strip()), None)


def create(session: Session, name: str, description: str | None = None, owner: str | None = None) -> int:
    case_set = CaseSet(name=_check_name(session, name), description=description or None, owner=owner)
    session.add(case_set)
    session.flush()
    return case_set.id


def rename(session: Session, case_set_id: int, name: str) -> None:
    _get(session, case_set_id).name = _check_name(session, name, exclude_id=case_set_id)


def delete(session: Session, case_set_id: int) -> None:
    session.delete(_get(session, case_set_id))


def entries(session: Session, case_set_id: int) -> list[CaseSetEntry]:
    return [CaseSetEntry(i.position, i.study_id, i.note) for i in _get(session, case_set_id).items]


def add_study(session: Session, case_set_id: int, study_id: int, note: str | None = None) -> bool:
    """Append a study at the end; returns False (and updates a given note) when it is already in the set."""
    case_set = _get(session, case_set_id)
    if session.get(Study, study_id) is None:
        raise CaseSetError(f"study {study_id} does not exist")
    for item in case_set.items:
        if item.study_id == study_id:
            if note:
                item.note = note
            return False
    last = max((i.position for i in case_set.items), default=-1)
    case_set.items.append(CaseSetItem(study_id=study_id, position=last + 1, note=note or None))
    return True


def remove_study(session: Session, case_set_id: int, study_id: int) -> None:
    case_set = _get(session, case_set_id)
    case_set.items = [i for i in case_set.items if i.study_id != study_id]
    _renumber(case_set.items)


def set_note(session: Session, case_set_id: int, study_id: int, note: str | None) -> None:
    for item in _get(session, case_set_id).items:
        if item.study_id == study_id:
            item.note = note or None
            return
    raise CaseSetError(f"study {study_id} is not in case set {case_set_id}")


def move(session: Session, case_set_id: int, study_id: int, offset: int) -> None:
    """Move a study ``offset`` places (-1 up, +1 down), clamped to the ends of the list."""
    items = sorted(_get(session, case_set_id).items, key=lambda i: i.position)
    index = next((n for n, i in enumerate(items) if i.study_id == study_id), None)
    if index is None:
        raise CaseSetError(f"study {study_id} is not in case set {case_set_id}")
    target = min(max(index + offset, 0), len(items) - 1)
    items.insert(target, items.pop(index))
    _renumber(items)


def _renumber(items: list[CaseSetItem]) -> None:
    """Positions 0..n-1 in list order, so the order has no gaps after a removal or move."""
    for n, item in enumerate(items):
        item.position = n
