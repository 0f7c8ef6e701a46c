"""Report language: facts from CMR reports and queries parsed by the same rules (spaCy rule matchers + NegEx).

``extract_facts(text) -> ReportFacts``, ``extract_many(texts) -> list[ReportFacts]``,
``parse_query(text) -> ParsedQuery`` and ``ParsedQuery.matches(facts) -> bool | None``.
"""

from cmrclip.language.facts import ReportFacts, extract_facts, extract_many
from cmrclip.language.lexicon import FINDINGS, LGE_PATTERNS, RARE_DIAGNOSES
from cmrclip.language.query import ParsedQuery, parse_query

__all__ = [
    "FINDINGS",
    "LGE_PATTERNS",
    "RARE_DIAGNOSES",
    "ParsedQuery",
    "ReportFacts",
    "extract_facts",
    "extract_many",
    "parse_query",
]
