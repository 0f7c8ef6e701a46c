"""Training captions drawn from the whole report, not only its impression.

An impression names the abnormal findings and the diagnosis; what is normal is left unsaid. Trained on
impressions alone, the text tower never sees "no late gadolinium enhancement" or "normal RV size" next to a video
that shows exactly that, so it cannot tell a finding from its negation, and short one-finding queries (what users
type, and what zero-shot prompts are) look unlike any caption it trained on. The findings section states every
finding, normal or not, one sentence each. So each training step captions a study either with its impression or
with a few sentences drawn from the impression and findings together. Evaluation and indexing still use the
impression; this only changes what the model is trained to match.
"""

from __future__ import annotations

import re

import torch

# Sentence ends: ". " / "! " / "? " or a line break; enumerations ("1. ") are stripped before splitting.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])|\n+")
_ENUMERATION = re.compile(r"^\s*\d+[.)]\s*", re.MULTILINE)


def sentences(text: str | None) -> list[str]:
    """The sentences of a report section, enumeration numbers removed, empty pieces dropped."""
    if not text:
        return []
    cleaned = _ENUMERATION.sub("", text)
    return [s.strip() for s in _SENTENCE_END.split(cleaned) if len(s.strip()) > 2]


class CaptionSampler:
    """Draws a study's caption for one training step from a seeded generator (so resumed runs repeat it).

    With probability ``impression_prob`` the impression itself; otherwise 1..``max_sentences`` sentences drawn
    without replacement from impression and findings, in report order.
    """

    def __init__(self, impression_prob: float = 0.5, max_sentences: int = 3) -> None:
        if not 0.0 <= impression_prob <= 1.0:
            raise ValueError("impression_prob must be in [0, 1]")
        self.impression_prob = impression_prob
        self.max_sentences = max(1, max_sentences)

    def __call__(self, impression: str, findings: str | None, generator: torch.Generator) -> str:
        pool = sentences(impression) + sentences(findings)
        if not pool or float(torch.rand(1, generator=generator)) < self.impression_prob:
            return impression
        count = int(torch.randint(1, min(self.max_sentences, len(pool)) + 1, (1,), generator=generator))
        picked = sorted(torch.randperm(len(pool), generator=generator)[:count].tolist())
        return " ".join(pool[i] for i in picked)
