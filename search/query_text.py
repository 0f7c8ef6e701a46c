"""Query text checks and the negation mitigation.

Contrastive text towers embed "no late enhancement" close to "late enhancement". With ``negation=True`` the
engine splits a query into its positive part and negated phrases ("no X", "without X", "absence of X") and
searches with ``normalise(e(positive) - NEGATION_WEIGHT * mean(e(negated)))``: for unit study vectors v, the
inner product is then sim(v, positive) - w * sim(v, negated), so FAISS ranks by it exactly. Off by default until
``cmrclip/train/search_modes.py`` shows it helps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search.errors import BadQuery

MAX_QUERY_CHARS = 2_000
NEGATION_WEIGHT = 0.5
_NEGATION = re.compile(
    r"\b(?:no|without|absence of|absent|not|negative for)\s+(?:evidence of\s+|signs? of\s+)?"
    r"(?P<phrase>[^,;.]+?)(?=\s+(?:and|but|with)\b|[,;.]|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedQuery:
    positive: str
    negated: tuple[str, ...] = ()


def normalise_query(text: str) -> str:
    """Collapse whitespace; raise ``BadQuery`` for empty or over-long text."""
    if not isinstance(text, str):
        raise BadQuery("the query must be text")
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(f"the query is {len(text):,} characters long; the limit is {MAX_QUERY_CHARS:,}")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise BadQuery("the query is empty; type what you are looking for, e.g. \"enlarged left ventricle\"")
    return cleaned


def split_negation(text: str) -> ParsedQuery:
    """``"dilated LV without LGE"`` -> positive ``"dilated LV"``, negated ``("LGE",)``."""
    negated = tuple(m.group("phrase").strip() for m in _NEGATION.finditer(text) if m.group("phrase").strip())
    positive = " ".join(_NEGATION.sub(" ", text).replace(" ,", ",").split()).strip(" ,;.")
    if not negated:
        return ParsedQuery(text)
    return ParsedQuery(positive, negated)
