"""Fusing the video and report rankings of a hybrid ("both") search.

Reciprocal rank fusion (Cormack et al., 2009): ``score(d) = sum over rankings of 1 / (RRF_K + rank(d))`` with
ranks from 1 and ``RRF_K = 60``. Chosen over a weighted sum of cosines because the two similarities live on
different scales (text-to-report cosines run much higher than text-to-video ones, and both shift with every
checkpoint), so a weighted sum would need re-tuning per checkpoint while ranks need none. The price: the fused
score is rank-based, so a cohort threshold is meaningful on a single-signal score, not on the fused one; and a
study without a report can only collect the video term. ``cmrclip/train/search_modes.py`` measures the modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MODES: tuple[str, ...] = ("video", "report", "both")
# The best measured (bench/RESULTS.md, "Search modes"): on the 600-study phantom, video alone ranks diagnosis
# queries as well as both fused (precision@10 0.84 each) and negated/compound queries better (0.57 vs 0.49).
DEFAULT_MODE = "video"

RRF_K = 60


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """``{signal: ids best first}`` -> ``[(id, fused score)]`` best first; ties go to the lower id."""
    scores: dict[int, float] = {}
    for ranking in rankings.values():
        for rank, study_id in enumerate(ranking, start=1):
            scores[study_id] = scores.get(study_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
