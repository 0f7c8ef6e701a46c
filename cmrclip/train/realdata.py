"""Where real stacks land: zero-shot scores and nearest phantom studies of a few real studies without labels.

The real stacks (``../shared/realdata``: heart-failure SAX cines with prior infarction, no reports) are too few
to measure accuracy on; they sanity-check the model. Each is embedded with the evaluated checkpoint, scored with
the product's prompts (``cmrclip/prompts.json``) and placed among the evaluated phantom split: its nearest
studies by embedding cosine, with their ground-truth diagnoses.

Zero-shot scores (cosine to the positive prompts minus cosine to the negative ones) have no fixed zero, so a
finding is read as present on a real stack when its score reaches the threshold that best separates the phantom
split by ground truth (Youden's J); a stack "scores as a dilated, poorly contracting LV" when LV dilation and LV
systolic dysfunction both do. Each score also comes with its percentile among the phantom split's scores.

Ingest lives with the caller (``cmr``): this module gets clip files, as the rest of the training program does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from cmrclip.inference import encode_clip_files
from cmrclip.model import CMRClip
from cmrclip.prompts import DIAGNOSES, FINDINGS, PromptSet, zero_shot_scores

# The scores the report shows per stack: (group, name, column title).
SHOWN: tuple[tuple[str, str, str], ...] = (
    ("diagnoses", "dilated_cardiomyopathy", "DCM"),
    ("findings", "lv_dilation", "LV dilation"),
    ("findings", "lv_systolic_dysfunction", "LV systolic dysfunction"),
    ("diagnoses", "prior_infarction", "prior infarction"),
)
# A stack "scores as a dilated, poorly contracting LV" when both findings reach their phantom threshold.
DILATED_POORLY_CONTRACTING: tuple[str, ...] = ("lv_dilation", "lv_systolic_dysfunction")
NEAREST = 5
# group of prompts.json -> prefix of its keys in a stack's entry (``finding_scores``, ``diagnosis_scores``, ...)
KIND = {"findings": "finding", "diagnoses": "diagnosis"}


@dataclass
class RealStacks:
    """Real studies to place: display name -> clip file. ``note`` says why there are none, or what to know."""

    source: str
    stacks: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def place_real_stacks(
    model: CMRClip,
    real: RealStacks,
    phantom_embeddings: np.ndarray,
    phantom_uids: Sequence[str],
    phantom_findings: Mapping[str, np.ndarray],
    phantom_diagnoses: Mapping[str, np.ndarray],
    prompts: Mapping[str, Mapping[str, PromptSet]],
    k: int = NEAREST,
) -> dict[str, Any]:
    """The ``realdata`` entry of the metrics: per stack its scores, verdicts and nearest phantom studies."""
    out: dict[str, Any] = {"source": real.source, "notes": list(real.notes), "n_stacks": len(real.stacks),
                           "stacks": []}
    if not real.stacks:
        return out
    names = list(real.stacks)
    embeddings = encode_clip_files(model, [real.stacks[n] for n in names])
    groups = {"findings": (FINDINGS, phantom_findings), "diagnoses": (DIAGNOSES, phantom_diagnoses)}
    scores, reference, thresholds = {}, {}, {}
    for group, (keys, labels) in groups.items():
        scores[group] = zero_shot_scores(model, embeddings, dict(prompts[group]))
        reference[group] = zero_shot_scores(model, phantom_embeddings, dict(prompts[group]))
        thresholds[group] = {key: youden_threshold(labels[key], reference[group][key]) for key in keys}
    out["thresholds"] = thresholds
    similarity = embeddings @ phantom_embeddings.T
    for i, name in enumerate(names):
        row: dict[str, Any] = {"name": name, "clip": str(real.stacks[name])}
        for group, (keys, _) in groups.items():
            kind = KIND[group]
            row[f"{kind}_scores"] = {key: float(scores[group][key][i]) for key in keys}
            row[f"{kind}_percentiles"] = {
                key: percentile(reference[group][key], float(scores[group][key][i])) for key in keys
            }
            row[f"{kind}_present"] = {
                key: _reaches(float(scores[group][key][i]), thresholds[group][key]) for key in keys
            }
        row["top_diagnosis"] = max(DIAGNOSES, key=lambda d: row["diagnosis_scores"][d])
        row["dilated_poorly_contracting"] = all(row["finding_present"][f] for f in DILATED_POORLY_CONTRACTING)
        order = np.argsort(-similarity[i], kind="stable")[:k]
        row["nearest"] = [
            {
                "study_uid": phantom_uids[j],
                "cosine": float(similarity[i, j]),
                "diagnoses": [d for d in DIAGNOSES if phantom_diagnoses[d][j]],
            }
            for j in order
        ]
        out["stacks"].append(row)
    n = len(out["stacks"])
    hits = sum(r["dilated_poorly_contracting"] for r in out["stacks"])
    dcm_top = sum(r["top_diagnosis"] == "dilated_cardiomyopathy" for r in out["stacks"])
    out["n_dilated_poorly_contracting"] = hits
    out["n_top_dilated_cardiomyopathy"] = dcm_top
    out["summary"] = (
        f"{hits} of {n} stacks score as dilated, poorly contracting LV; "
        f"{dcm_top} of {n} have dilated cardiomyopathy as their top diagnosis"
    )
    return out


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The score that best separates ``labels`` (max TPR - FPR; a score at or above it is positive).

    None when the split holds only one class: there is then nothing to calibrate against.
    """
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    fpr, tpr, cut = roc_curve(labels, scores)
    best = 1 + int(np.argmax((tpr - fpr)[1:]))  # cut[0] is roc_curve's +inf "nothing positive" point
    return float(cut[best])


def percentile(reference: np.ndarray, value: float) -> float:
    """Share of ``reference`` scores below ``value`` (ties count half), 0..100."""
    reference = np.asarray(reference, dtype=float)
    if not len(reference):
        return float("nan")
    return float(100.0 * (np.mean(reference < value) + 0.5 * np.mean(reference == value)))


def _reaches(value: float, threshold: float | None) -> bool | None:
    return None if threshold is None else bool(value >= threshold)
