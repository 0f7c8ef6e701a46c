"""Zero-shot prompt ensembles (``prompts.json``) and their scores: sim(positive ensemble) - sim(negative)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrclip.inference import encode_text_list
from cmrclip.language.lexicon import FINDINGS as FINDINGS  # one list of findings: prompts, reports, queries
from cmrclip.model import CMRClip

PROMPTS_FILE = Path(__file__).with_name("prompts.json")
DIAGNOSES: tuple[str, ...] = (
    "normal", "dilated_cardiomyopathy", "hypertrophic_cardiomyopathy", "prior_infarction", "myocarditis",
    "amyloidosis", "rv_dilation", "pericardial_effusion",
)
MOTION_FINDINGS: tuple[str, ...] = (
    "lv_systolic_dysfunction", "rv_systolic_dysfunction", "regional_wall_motion_abnormality",
)


@dataclass(frozen=True)
class PromptSet:
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    # plain-language query used for retrieval precision (diagnoses only)
    query: str | None = None


def load_prompts(path: Path = PROMPTS_FILE) -> dict[str, dict[str, PromptSet]]:
    """``{"findings": {name: PromptSet}, "diagnoses": {name: PromptSet}}``."""
    raw = json.loads(Path(path).read_text())
    return {
        group: {
            name: PromptSet(tuple(p["positive"]), tuple(p["negative"]), p.get("query"))
            for name, p in raw[group].items()
        }
        for group in ("findings", "diagnoses")
    }


def ensemble_embedding(model: CMRClip, prompts: tuple[str, ...]) -> np.ndarray:
    """Mean of the prompts' normalised embeddings, renormalised."""
    mean = encode_text_list(model, list(prompts)).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def zero_shot_scores(
    model: CMRClip, study_embeddings: np.ndarray, prompts: dict[str, PromptSet]
) -> dict[str, np.ndarray]:
    """Per name, a score per study: cosine to the positive ensemble minus cosine to the negative ensemble."""
    return {
        name: study_embeddings @ ensemble_embedding(model, p.positive)
        - study_embeddings @ ensemble_embedding(model, p.negative)
        for name, p in prompts.items()
    }
