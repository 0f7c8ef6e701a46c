"""The result object of a search: one ranked study with the catalog fields the UI shows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from catalog.search_queries import HitRow


@dataclass(frozen=True)
class Hit:
    rank: int
    study_id: int
    study_uid: str
    # the ranking score: cosine similarity for one signal, the fused score (see search.fusion) for "both"
    score: float
    # which signals matched: "video" (the study's clips), "report" (its report text)
    signals: tuple[str, ...]
    accession: str | None
    study_date: dt.date | None
    patient_age: int | None
    patient_sex: str | None
    institution: str | None
    manufacturer: str | None
    scanner_model: str | None
    field_strength: float | None
    views: tuple[str, ...]
    impression: str | None
    has_report: bool
    # identifiers: the UI hides patient_id and patient_name from researchers; patient_key is pseudonymous
    patient_key: str
    patient_id: str | None
    patient_name: str | None
    clip_path: str | None
    # raw cosine similarity per signal that matched
    signal_scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A flat JSON-ready dict (dates as ISO strings, tuples as lists)."""
        out = dataclasses.asdict(self)
        out["study_date"] = self.study_date.isoformat() if self.study_date else None
        out["signals"], out["views"] = list(self.signals), list(self.views)
        return out


def make_hit(rank: int, row: HitRow, score: float, signal_scores: dict[str, float]) -> Hit:
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(HitRow)}
    return Hit(
        rank=rank,
        score=float(score),
        signals=tuple(s for s in ("video", "report") if s in signal_scores),
        signal_scores={k: float(v) for k, v in signal_scores.items()},
        **values,
    )
