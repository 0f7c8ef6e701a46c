"""Query by example: studies the user marks as "like these" (and optionally "not like these") become the query.

CMR-CLIP's embedding is strongest few-shot: the mean of a handful of studies' vectors (a prototype) finds more of
the same better than a sentence can describe it. The query vector is Rocchio's relevance-feedback update, the
standard of vector retrieval since SMART: the mean of the positives' unit vectors, minus ``UNLIKE_WEIGHT`` times
the mean of the negatives', renormalised. With a text as well, the prototype and the text's vector are mixed
(``TEXT_MIX``): text and video embeddings share one space, so "like these, but with LGE" moves the prototype
toward the words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.errors import BadQuery

UNLIKE_WEIGHT = 0.5  # Rocchio's gamma relative to beta = 1 (the classic 0.75 / 0.15 pair, less cautious)
TEXT_MIX = 0.5  # share of the text's vector when a query has both words and examples
MAX_EXAMPLES = 200  # a whole case set may be the query; more than this is a cohort, not an example


@dataclass(frozen=True)
class Examples:
    """Study numbers marked as positive (``like``) and negative (``unlike``) examples."""

    like: tuple[int, ...] = ()
    unlike: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if set(self.like) & set(self.unlike):
            raise BadQuery("a study cannot be both a positive and a negative example")
        if len(self.like) + len(self.unlike) > MAX_EXAMPLES:
            raise BadQuery(f"at most {MAX_EXAMPLES} example studies per query")

    def __bool__(self) -> bool:
        return bool(self.like or self.unlike)

    @property
    def ids(self) -> np.ndarray:
        return np.array(sorted({*self.like, *self.unlike}), dtype=np.int64)

    def describe(self) -> str:
        """For the audit log and titles: ``"like #3, #7; unlike #9"``."""
        parts = []
        if self.like:
            parts.append("like " + ", ".join(f"#{i}" for i in self.like))
        if self.unlike:
            parts.append("unlike " + ", ".join(f"#{i}" for i in self.unlike))
        return "; ".join(parts)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)


def _mean_of_units(rows: np.ndarray) -> np.ndarray:
    """The mean of the rows scaled to unit length (an example's length does not weigh it)."""
    return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)).mean(axis=0)


def prototype(like: np.ndarray, unlike: np.ndarray | None = None) -> np.ndarray | None:
    """Rocchio's query from example vectors (rows); None when there is no positive example to start from."""
    if len(like) == 0:
        return None
    query = _mean_of_units(like)
    if unlike is not None and len(unlike):
        query = query - UNLIKE_WEIGHT * _mean_of_units(unlike)
    return unit(query)


def with_text(proto: np.ndarray | None, text: np.ndarray | None, unlike: np.ndarray | None = None) -> np.ndarray:
    """The query vector of examples and words: their mix, or whichever exists (negatives alone move the text)."""
    if proto is None and text is None:
        raise BadQuery("give a query text or at least one positive example")
    if proto is None:
        assert text is not None
        if unlike is not None and len(unlike):
            return unit(text - UNLIKE_WEIGHT * _mean_of_units(unlike))
        return unit(text)
    if text is None:
        return proto
    return unit((1 - TEXT_MIX) * proto + TEXT_MIX * text)
