"""IN (...) lists in chunks that stay under SQLite's and psycopg's parameter limits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

IN_CHUNK = 20_000


def in_chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), IN_CHUNK):
        yield [int(i) for i in ids[start : start + IN_CHUNK]]
