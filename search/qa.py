"""Where the images and the report disagree: the discrepancy list of the QA page and ``cmr qa``.

Per study with a report, per finding, the report's word (present, absent, or silent) is set against the images'
calibrated probability (``search.understanding.ImageReading``). The disagreement is ``p`` where the report says
absent, ``1 - p`` where it says present, and ``SILENT_WEIGHT * p`` where it says nothing (a silent report is
weaker evidence of absence than a stated one; "uncertain" is no claim). A finding the images read poorly would
fill the list with noise, so each disagreement is weighted by how well the images separate that finding across
the archive: the Gini coefficient ``2 * AUC - 1`` of the image score against the reports that state it (the same
reports calibrate the score, so this is a property of the archive, not of one study). A study is listed once,
under its strongest disagreement, when the images lean the other way (weighted disagreement at least
``MIN_CONFIDENCE``), strongest first.

This is a second reader for quality assurance and teaching, not a diagnosis: a listed study is one a person should
look at again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from cmrclip.language import FINDINGS
from search.fact_table import CODE, FactTable
from search.understanding import SHORT, ImageReading

SILENT_WEIGHT = 0.6
MIN_CONFIDENCE = 0.25
MIN_LABELLED = 10  # reports per class before a finding's image quality is trusted at all

__all__ = ["FINDINGS", "Discrepancy", "discrepancies", "finding_quality"]

REPORT_WORD = {CODE["present"]: "present", CODE["absent"]: "absent", 0: "not mentioned"}


@dataclass(frozen=True)
class Discrepancy:
    study_id: int
    finding: str
    report: str  # present | absent | not mentioned
    image_probability: float  # the images' calibrated probability that the finding is present
    confidence: float  # disagreement weighted by how well the images read this finding, in [0, 1]

    def text(self) -> str:
        """``"report: no LGE; images: LGE 0.91"``."""
        name = SHORT.get(self.finding, self.finding.replace("_", " "))
        said = {"present": name, "absent": f"no {name}", "not mentioned": f"silent on {name}"}[self.report]
        return f"report: {said}; images: {name} {self.image_probability:.2f}"


def finding_quality(reading: ImageReading, facts: FactTable) -> dict[str, float]:
    """Per finding, ``2 * AUC - 1`` (clipped at 0) of the images' probability against the reports that state it;
    0 where too few reports state it either way."""
    probs, known = reading.of(facts.ids)
    quality: dict[str, float] = {}
    for j, name in enumerate(FINDINGS):
        status = facts.findings[:, j]
        use = known & ((status == CODE["present"]) | (status == CODE["absent"]))
        y = status[use] == CODE["present"]
        if y.sum() < MIN_LABELLED or (~y).sum() < MIN_LABELLED:
            quality[name] = 0.0
            continue
        quality[name] = max(0.0, 2.0 * float(roc_auc_score(y, probs[use, j])) - 1.0)
    return quality


def discrepancies(reading: ImageReading, facts: FactTable, allowed: np.ndarray | None = None, *,
                  finding: str | None = None, limit: int = 20) -> list[Discrepancy]:
    """The studies whose images most disagree with their report, strongest first (at most ``limit``)."""
    if finding is not None and finding not in FINDINGS:
        raise ValueError(f"unknown finding {finding!r}; use one of {', '.join(FINDINGS)}")
    if len(facts) == 0 or reading is None:
        return []
    quality = finding_quality(reading, facts)
    rows = np.arange(len(facts))
    if allowed is not None:
        rows = rows[np.isin(facts.ids, allowed)]
    probs, known = reading.of(facts.ids[rows])
    rows, probs = rows[known], probs[known]
    status = facts.findings[rows]
    weight = np.array([quality[name] for name in FINDINGS])
    disagree = np.where(status == CODE["present"], 1.0 - probs,
                        np.where(status == CODE["absent"], probs,
                                 np.where(status == 0, SILENT_WEIGHT * probs, 0.0)))
    confidence = disagree * weight
    if finding is not None:
        mask = np.zeros(len(FINDINGS), bool)
        mask[FINDINGS.index(finding)] = True
        confidence = np.where(mask, confidence, 0.0)
    best = confidence.argmax(axis=1) if len(rows) else np.zeros(0, int)
    top = confidence[np.arange(len(rows)), best] if len(rows) else np.zeros(0)
    order = np.lexsort((facts.ids[rows], -top))
    out: list[Discrepancy] = []
    for i in order:
        if top[i] < MIN_CONFIDENCE or len(out) == limit:
            break
        j = int(best[i])
        out.append(Discrepancy(int(facts.ids[rows[i]]), FINDINGS[j], REPORT_WORD[int(status[i, j])],
                               float(probs[i, j]), float(top[i])))
    return out
