"""Errors of the search engine; each message says what to do about it."""

from __future__ import annotations

from catalog.db import DatabaseUnavailable


class SearchError(Exception):
    """Base of every error the engine raises on bad input or an unusable index."""


class BadQuery(SearchError):
    """The query text is empty, whitespace only, or too long."""


class UnknownFilter(SearchError):
    """A filter names a field that does not exist, or gives a value that cannot be read."""


class UnknownStudy(SearchError):
    """A study UID is not in the catalog, or has no embedding yet."""


class IndexMissing(SearchError):
    """No index has been built yet."""


class IndexMismatch(SearchError):
    """The active index was built by another checkpoint than the one loaded."""


__all__ = [
    "BadQuery",
    "DatabaseUnavailable",
    "IndexMismatch",
    "IndexMissing",
    "SearchError",
    "UnknownFilter",
    "UnknownStudy",
]
