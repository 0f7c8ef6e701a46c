"""The result object of a search: one ranked study with the catalog fields the UI shows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from catalog.facts import facts_record
from catalog.studies import StudyRow


@dataclass(frozen=True)
class Hit(StudyRow):
    """A catalog row (``catalog.studies.StudyRow``) ranked for a query.

    The row holds identifiers; what a role may see of them is ``search.privacy``'s rule.
    """

    rank: int
    # the ranking score: cosine similarity for one signal, the fused score (see search.fusion) for "both"
    score: float
    # which signals matched: "video" (the study's clips), "report" (its report text)
    signals: tuple[str, ...]
    # raw cosine similarity per signal that matched
    signal_scores: dict[str, float] = field(default_factory=dict)
    # why it matched, e.g. "report: LVEF 24 %; images: dilated LV 0.93" (see search.understanding)
    why: str = ""
    # what its report states (catalog.facts.facts_record), None without a report
    facts: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A flat JSON-ready dict of every field (dates as ISO strings, tuples as lists), identifiers included."""
        out = dataclasses.asdict(self)
        for name in ("study_date", "patient_birth_date"):
            value = getattr(self, name)
            out[name] = value.isoformat() if value else None
        out["signals"], out["views"] = list(self.signals), list(self.views)
        out["facts"] = facts_record(self.facts)
        return out


def make_hit(rank: int, row: StudyRow, score: float, signal_scores: dict[str, float], *, why: str = "",
             facts: dict[str, Any] | None = None) -> Hit:
    return Hit(
        **{f.name: getattr(row, f.name) for f in dataclasses.fields(StudyRow)},
        rank=rank,
        score=float(score),
        signals=tuple(s for s in ("video", "report", "facts", "images", "fulltext") if s in signal_scores),
        signal_scores={k: float(v) for k, v in signal_scores.items()},
        why=why,
        facts=facts,
    )
