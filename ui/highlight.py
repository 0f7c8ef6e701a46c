"""Report snippets with the words of the query highlighted, as Streamlit Markdown."""

from __future__ import annotations

import re

# Words too common in queries to be worth highlighting.
STOPWORDS = frozenset({
    "and", "are", "for", "from", "not", "over", "than", "the", "under", "with", "without",
    "patient", "patients", "study", "studies", "case", "cases",
})
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def query_terms(query: str) -> list[str]:
    """Distinct words of three or more letters, stopwords left out, longest first (so longer matches win)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z\-]{2,}", query)} - STOPWORDS
    return sorted(words, key=lambda w: (-len(w), w))


def escape_markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def snippet(text: str, max_chars: int = 280) -> str:
    """``text`` cut at a word boundary to at most ``max_chars``, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[:max_chars].rsplit(" ", 1)[0] + " …"


def highlight(text: str, query: str, max_chars: int = 280) -> str:
    """Markdown of a snippet of ``text`` in which words starting with a query term are highlighted.

    Prefix matching lets "dilated" light up "dilatation" and "hypertroph" any form of hypertrophy.
    """
    short = snippet(text, max_chars)
    terms = query_terms(query)
    if not terms:
        return escape_markdown(short)
    stems = [t[:7] if len(t) > 7 else t for t in terms]
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in stems) + r")[\w\-]*", re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(short):
        out.append(escape_markdown(short[last : match.start()]))
        out.append(f":orange-background[{escape_markdown(match.group(0))}]")
        last = match.end()
    out.append(escape_markdown(short[last:]))
    return "".join(out)
