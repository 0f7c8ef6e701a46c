"""How a query is understood and ranked: report facts, the images' per-finding reading, free-text similarity,
and full-text matches of the report text.

``parse_query`` (``cmrclip.language``, the rules that read reports) turns "dilated LV with EF around 25 percent,
no LGE" into required / forbidden findings, numeric ranges, diagnoses, LGE pattern and territory, and the free
text left over. Each study then gets, per constraint, evidence that it holds:

- its report's facts where the report says (holds: ``REPORT_TRUE``, contradicted: ``REPORT_FALSE``; reports are
  written by people and are sometimes wrong, so neither is 0 or 1);
- else the images' calibrated probability of the finding the constraint is about (``ImageReading``), kept within
  [1 - ``IMAGE_CAP``, ``IMAGE_CAP``] so that a report that says so outranks the images; a constraint the images
  cannot judge (a diagnosis name, a number with no finding behind it) counts 0.5.

The study's score is the product of its evidence (the chance that every constraint holds, taking them as
independent), plus ``TIE_WEIGHT`` times the mean image evidence (so the images order studies whose reports
agree equally), plus the free text's embedding similarity (``TEXT_WEIGHT``, min-max scaled over the candidates)
and a full-text bonus (``FULLTEXT_WEIGHT``) for studies whose report contains the free text's words
("Fabry", "non-compaction"). A query with no constraints ranks by embedding similarity as before, with the
full-text ranking fused in by reciprocal rank fusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from cmrclip.language import FINDINGS, LGE_PATTERNS, ParsedQuery, ReportFacts, parse_query
from search.fact_table import Check, FactTable

REPORT_TRUE = 0.97
REPORT_FALSE = 0.03
UNKNOWN = 0.5
IMAGE_CAP = 0.9  # image evidence counts at most this (and at least 1 - this): a report that says so comes first
TIE_WEIGHT = 0.05
TEXT_WEIGHT = 0.10  # free text left after the constraints
TEXT_WEIGHT_NO_FREE_TEXT = 0.03  # the whole query's embedding, a weak tie-breaker
FULLTEXT_WEIGHT = 0.5
CANDIDATES = 200  # studies (best by facts and images) whose embedding similarity is computed
MIN_CLASS = 5  # reports per class (present / absent) needed to calibrate a finding; else the fallback mapping
FALLBACK_SCALE = 2.0  # fallback: p = sigmoid(FALLBACK_SCALE * z), z = the score standardised over the archive

__all__ = ["FINDINGS", "LGE_PATTERNS", "ImageReading", "facts_rows", "facts_text", "understand", "why_text"]

SHORT = {
    "lv_dilation": "dilated LV", "lv_systolic_dysfunction": "LV dysfunction", "lv_hypertrophy": "LV hypertrophy",
    "rv_dilation": "dilated RV", "rv_systolic_dysfunction": "RV dysfunction", "lge_present": "LGE",
    "regional_wall_motion_abnormality": "RWMA", "pericardial_effusion": "pericardial effusion",
}
UNITS = {"lvef": ("LVEF", " %"), "rvef": ("RVEF", " %"), "max_wall_thickness_mm": ("wall", " mm"),
         "lvedvi": ("LVEDVi", " ml/m²"), "rvedvi": ("RVEDVi", " ml/m²"), "lvedv": ("LVEDV", " ml"),
         "rvedv": ("RVEDV", " ml"), "lv_mass": ("LV mass", " g"), "lv_mass_index": ("LV mass index", " g/m²")}


@lru_cache(maxsize=4096)
def understand(text: str) -> ParsedQuery:
    """The parsed query (cached: parsing takes a few ms, the same queries come back)."""
    return parse_query(text)


# --- the images' reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReading:
    """Per study with a video vector, the calibrated probability of each finding (``FINDINGS`` order).

    Zero-shot score: cosine to the finding's positive prompt ensemble minus cosine to its negative ensemble
    (``cmrclip.prompts``). Calibration: per finding, Platt scaling (1-D logistic regression) of that score against
    the catalog's own report facts (present = 1, absent = 0) over the studies that have both; with fewer than
    ``MIN_CLASS`` reports of either class, the fallback monotone mapping ``sigmoid(FALLBACK_SCALE * z)`` of the
    score standardised over the archive. ``calibrated`` says which findings were fitted.
    """

    ids: np.ndarray  # int64, sorted
    probs: np.ndarray  # float32 [n, len(FINDINGS)]
    calibrated: tuple[str, ...]
    params: dict[str, tuple[float, float]]  # finding -> (a, b): p = sigmoid(a * score + b)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, directions: np.ndarray, facts: FactTable) -> ImageReading:
        order = np.argsort(ids)
        ids, vectors = ids[order], vectors[order]
        scores = (vectors @ directions.T).astype(np.float64)  # [n, F]
        probs = np.zeros_like(scores, dtype=np.float32)
        pos = facts.positions(ids)
        calibrated, params = [], {}
        for j, name in enumerate(FINDINGS):
            status = np.where(pos >= 0, facts.finding(name)[np.maximum(pos, 0)], 0) if len(facts) else np.zeros(
                len(ids), np.int8)
            labelled = (status == 1) | (status == 2)
            x, y = scores[labelled, j], (status[labelled] == 1).astype(np.float64)
            if y.sum() >= MIN_CLASS and (1 - y).sum() >= MIN_CLASS:
                a, b = _platt(x, y)
                calibrated.append(name)
            else:
                mu, sd = float(scores[:, j].mean()) if len(ids) else 0.0, float(scores[:, j].std()) if len(ids) else 1.0
                a = FALLBACK_SCALE / max(sd, 1e-6)
                b = -a * mu
            params[name] = (float(a), float(b))
            probs[:, j] = _sigmoid(a * scores[:, j] + b)
        return cls(ids, probs, tuple(calibrated), params)

    def of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(probs [len(ids), F], known [len(ids)])``: rows of studies without a video vector are 0.5, unknown."""
        if ids is self.ids or (len(ids) == len(self.ids) and np.array_equal(ids, self.ids)):
            return self.probs, np.ones(len(ids), bool)
        out = np.full((len(ids), len(FINDINGS)), UNKNOWN, dtype=np.float32)
        if len(self.ids) == 0:
            return out, np.zeros(len(ids), bool)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        known = self.ids[pos] == ids
        out[known] = self.probs[pos[known]]
        return out, known


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def _platt(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Logistic regression of y on x (Newton's method, Platt's smoothed targets, a little ridge)."""
    n1, n0 = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    sd = max(float(x.std()), 1e-6)
    xs = (x - x.mean()) / sd
    w = np.zeros(2)
    X = np.stack([xs, np.ones_like(xs)], axis=1)
    for _ in range(iters):
        p = _sigmoid(X @ w)
        g = X.T @ (p - t) + 1e-3 * w
        h = (X * (p * (1 - p))[:, None]).T @ X + 1e-3 * np.eye(2)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    a = w[0] / sd
    return float(a), float(w[1] - a * x.mean())


# --- scoring ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    ids: np.ndarray  # candidates
    evidence: np.ndarray  # product of per-constraint evidence
    image_mean: np.ndarray  # mean image evidence (tie-breaker), 0.5 where the images say nothing
    outcomes: np.ndarray  # int8 [n, n_checks] from the reports
    image: np.ndarray  # float32 [n, n_checks]: image evidence per check (NaN: none)


def score_constraints(checks: list[Check], facts: FactTable, reading: ImageReading | None, ids: np.ndarray) -> Scored:
    """Evidence of every study in ``ids`` for the constraints (vectorised over studies)."""
    n = len(ids)
    pos = facts.positions(ids)
    has = pos >= 0
    probs, known = reading.of(ids) if reading is not None else (np.full((n, len(FINDINGS)), UNKNOWN), np.zeros(n, bool))
    outcomes = np.zeros((n, len(checks)), dtype=np.int8)
    image = np.full((n, len(checks)), np.nan, dtype=np.float32)
    evidence = np.ones(n, dtype=np.float64)
    for c, check in enumerate(checks):
        if has.any():
            outcomes[has, c] = check.outcome[pos[has]]
        if check.image is not None:
            finding, wanted = check.image
            p = probs[:, FINDINGS.index(finding)]
            img = p if wanted else 1.0 - p
            image[known, c] = img[known]
        else:
            img = np.full(n, UNKNOWN)
        img = np.clip(img, 1.0 - IMAGE_CAP, IMAGE_CAP)
        e = np.where(outcomes[:, c] == 1, REPORT_TRUE, np.where(outcomes[:, c] == -1, REPORT_FALSE,
                                                                  np.where(known, img, UNKNOWN)))
        evidence *= e
    with np.errstate(invalid="ignore"):
        counted = (~np.isnan(image)).sum(axis=1)
        image_mean = np.where(counted > 0, np.nansum(image, axis=1) / np.maximum(counted, 1), UNKNOWN)
    return Scored(ids, evidence, image_mean, outcomes, image)


def scale(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (all equal: zeros)."""
    if len(values) == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


# --- why it matched ---------------------------------------------------------------------------------------------


def why_text(parsed: ParsedQuery, facts: dict[str, Any] | None, image: dict[str, float], fulltext_words: list[str],
             text_score: float | None) -> str:
    """``"report: LVEF 24 %, dilated LV; images: dilated LV 0.93; full text: fabry; text 0.41"``."""
    parts = []
    if facts is not None and parsed.has_constraints:
        said = [_reason(label) for label, ok in parsed.checks(ReportFacts.from_json(facts)) if ok]
        if said:
            parts.append("report: " + ", ".join(said))
    if image:
        parts.append("images: " + ", ".join(f"{k} {v:.2f}" for k, v in image.items()))
    if fulltext_words:
        parts.append("full text: " + " ".join(fulltext_words))
    if text_score is not None:
        parts.append(f"text {text_score:.2f}")
    return "; ".join(parts)


def _reason(label: str) -> str:
    """``"lvef 24"`` → ``"LVEF 24 %"``; ``"lv_dilation: present"`` → ``"dilated LV"``; ``"no lge_present: absent"``
    → ``"no LGE"``."""
    head, _, _ = label.partition(":")
    words = head.split()
    if len(words) == 2 and words[0] in UNITS:
        name, unit = UNITS[words[0]]
        return f"{name} {words[1]}{unit}"
    if words and words[0] in UNITS:  # a range judged by its finding: "lvef -50 (lv_systolic_dysfunction: ...)"
        finding = label.split("(", 1)[-1].split(":")[0] if "(" in label else ""
        return f"{UNITS[words[0]][0]} by words ({SHORT.get(finding, finding)} {label.rsplit(': ', 1)[-1].rstrip(')')})"
    neg = head.startswith("no ")
    name = head[3:] if neg else head
    name = SHORT.get(name, name.replace("_", " "))
    return f"no {name}" if neg else name


def facts_text(record: dict[str, Any] | None, limit: int = 60) -> str:
    """A short line of a ``catalog.facts.facts_record``: ``"LVEF 24 %; dilated LV, no LGE"``."""
    if not record:
        return ""
    nums = [f"{UNITS[k][0]} {record[k]:g}{UNITS[k][1]}" for k in ("lvef", "rvef", "max_wall_thickness_mm")
            if record.get(k) is not None]
    found = [("" if v == "present" else "no " if v == "absent" else "?") + SHORT.get(k, k)
             for k, v in (record.get("findings") or {}).items()]
    text = "; ".join(p for p in (", ".join(nums), ", ".join(found)) if p)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def facts_rows(record: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Label/value rows of a ``catalog.facts.facts_record`` for the study page (numbers, findings, LGE, diagnoses)."""
    if not record:
        return []
    rows = [(UNITS[k][0], f"{record[k]:g}{UNITS[k][1]}") for k in UNITS if record.get(k) is not None]
    rows += [(SHORT.get(k, k), v) for k, v in (record.get("findings") or {}).items()]
    if record.get("lge_pattern"):
        rows.append(("LGE pattern", ", ".join(record["lge_pattern"])))
    if record.get("territories"):
        rows.append(("Territory / wall", ", ".join(record["territories"])))
    if record.get("diagnoses"):
        rows.append(("Diagnoses", ", ".join(d.replace("_", " ") for d in record["diagnoses"])))
    return rows
