"""Evaluation of a checkpoint (and baselines) on a split: zero-shot, few-shot, probes, retrieval -> report.

Writes ``metrics.json`` and ``report.md`` (with figures) to ``out_dir`` and returns the same dict. NaN metrics
(a class absent from the split) are written as null. Given real stacks (``realdata``), the report also says where
they land among the split (``cmrclip.train.realdata``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmrclip.checkpoint import load_checkpoint
from cmrclip.factory import DEFAULT_MODEL, create_model
from cmrclip.inference import encode_study_clips, encode_text_list, pick_device
from cmrclip.model import CMRClip
from cmrclip.prompts import DIAGNOSES, FINDINGS, MOTION_FINDINGS, PromptSet, load_prompts, zero_shot_scores
from cmrclip.train.dataset import StudyClipDataset, usable_records
from cmrclip.train.ground_truth import label_matrix
from cmrclip.train.metrics import (
    FEW_SHOTS,
    auc,
    average_precision,
    few_shot_auc,
    precision_at_k,
    probe_auc,
    retrieval_metrics,
)
from cmrclip.train.realdata import RealStacks, place_real_stacks
from cmrclip.train.records import StudyRecord
from cmrclip.train.report import write_report
from cmrclip.train.splits import split_records

log = logging.getLogger(__name__)

UNTRAINED = "untrained"


@dataclass
class EvalSet:
    """Embedded studies of one split with their labels."""

    records: list[StudyRecord]
    embeddings: np.ndarray
    findings: dict[str, np.ndarray]
    diagnoses: dict[str, np.ndarray]


def evaluate(
    model_ckpt: Path,
    records: Sequence[StudyRecord],
    ground_truth: Mapping[str, Mapping[str, Any]],
    split: str = "test",
    site: str | None = None,
    baselines: Mapping[str, Path] | None = None,
    out_dir: Path = Path("eval"),
    *,
    holdout_site: str | None = None,
    device: str = "auto",
    episodes: int = 100,
    seed: int = 0,
    realdata: RealStacks | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_ckpt`` on ``split`` (optionally one ``site``); baselines get the same table.

    ``holdout_site`` defaults to the one the checkpoint was trained without; when ``split == "test"`` and there
    is one, the whole table is also computed on it under ``external``. The ``untrained`` baseline (a fresh
    cpu-small with the pretrained text tower) is always added. ``realdata``: real stacks (clip files) to place
    among ``split`` with the model, under the ``realdata`` key and a report section; None leaves both out.
    """
    dev = pick_device(device)
    model, meta = load_checkpoint(model_ckpt, dev)
    if holdout_site is None:
        holdout_site = meta.training.get("holdout_site")
    splits = split_records(records, holdout_site)
    sets = {"train": splits["train"], split: splits[split]}
    if split == "test" and holdout_site and splits["external"]:
        sets["external"] = splits["external"]
    sets = {name: _with_truth(recs, ground_truth, site if name == split else None) for name, recs in sets.items()}
    if not sets[split]:
        where = f"split {split!r}" + (f", site {site!r}" if site else "")
        raise ValueError(f"no studies with clips and ground truth in {where}")

    prompts = load_prompts()
    results: dict[str, Any] = {"checkpoint": meta.hash, "split": split, "site": site, "holdout_site": holdout_site}
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    candidates: dict[str, CMRClip] = {"model": model}
    for name, path in (baselines or {}).items():
        candidates[name] = load_checkpoint(path, dev)[0]
    torch.manual_seed(seed)
    candidates[UNTRAINED] = create_model(DEFAULT_MODEL).to(dev).eval()

    # Clips are read once and shared by all candidates: decompressing the npz files costs more than encoding.
    datasets = {name: StudyClipDataset(recs) for name, recs in sets.items()}
    results["baselines"] = {}
    for name, candidate in candidates.items():
        log.info("evaluating %s on %s (%d studies)", name, split, len(sets[split]))
        embedded = {s: _embed(candidate, ds, ground_truth) for s, ds in datasets.items()}
        table, roc = _model_table(candidate, embedded["train"], embedded[split], prompts, episodes, seed)
        if "external" in embedded:
            table["external"] = _model_table(candidate, embedded["train"], embedded["external"], prompts,
                                             episodes, seed)[0]
        if name == "model":
            results.update(table)
            curves = roc
            if realdata is not None:
                here = embedded[split]
                results["realdata"] = place_real_stacks(
                    candidate, realdata, here.embeddings, [r.study_uid for r in here.records], here.findings,
                    here.diagnoses, prompts,
                )
        else:
            results["baselines"][name] = table
    results = _json_safe(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    write_report(results, curves, out_dir)
    return results


def _with_truth(
    records: Sequence[StudyRecord], ground_truth: Mapping[str, Any], site: str | None
) -> list[StudyRecord]:
    kept = [r for r in usable_records(records, require_caption=False) if site is None or r.site == site]
    missing = [r.study_uid for r in kept if r.study_uid not in ground_truth]
    if missing:
        log.warning("%d studies have no ground truth and are not evaluated", len(missing))
    return [r for r in kept if r.study_uid in ground_truth]


def _embed(model: CMRClip, dataset: StudyClipDataset, ground_truth: Mapping[str, Any]) -> EvalSet:
    truths = [ground_truth[r.study_uid] for r in dataset.records]
    return EvalSet(
        dataset.records,
        encode_study_clips(model, (dataset.clips(i) for i in range(len(dataset)))),
        label_matrix(truths, FINDINGS, "finding"),
        label_matrix(truths, DIAGNOSES, "diagnosis"),
    )


def _model_table(
    model: CMRClip, train: EvalSet, test: EvalSet, prompts: dict[str, dict[str, PromptSet]], episodes: int,
    seed: int,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """All metric keys for one model on one eval set, plus (labels, scores) per finding for ROC plots."""
    finding_scores = zero_shot_scores(model, test.embeddings, prompts["findings"])
    diagnosis_scores = zero_shot_scores(model, test.embeddings, prompts["diagnoses"])
    zero_shot = {f: auc(test.findings[f], finding_scores[f]) for f in FINDINGS}
    query_texts = [prompts["diagnoses"][d].query or d.replace("_", " ") for d in DIAGNOSES]
    query_sim = test.embeddings @ encode_text_list(model, query_texts).T
    captioned = [i for i, r in enumerate(test.records) if r.caption and r.caption.strip()]
    retrieval: dict[str, float] = {}
    if len(captioned) >= 2:
        captions = [test.records[i].caption or "" for i in captioned]
        retrieval = retrieval_metrics(encode_text_list(model, captions) @ test.embeddings[captioned].T, captions)
    table = {
        "n_studies": len(test.records),
        "n_train": len(train.records),
        "zero_shot_auc": zero_shot,
        "zero_shot_macro_auc": _nanmean(zero_shot.values()),
        "zero_shot_motion_auc": _nanmean(zero_shot[f] for f in MOTION_FINDINGS),
        "diagnosis_auc": {d: auc(test.diagnoses[d], diagnosis_scores[d]) for d in DIAGNOSES},
        # undefined (NaN) for a diagnosis absent from the split; over min(10, positives) when it has fewer than 10
        "diagnosis_precision_at_10": {
            d: precision_at_k(query_sim[:, i], test.diagnoses[d], 10, attainable=True)
            if test.diagnoses[d].any()
            else math.nan
            for i, d in enumerate(DIAGNOSES)
        },
        "diagnosis_ap": {d: average_precision(test.diagnoses[d], query_sim[:, i]) for i, d in enumerate(DIAGNOSES)},
        "few_shot_auc": {
            str(k): {
                f: few_shot_auc(train.embeddings, train.findings[f], test.embeddings, test.findings[f], k,
                                episodes, seed)
                for f in FINDINGS
            }
            for k in FEW_SHOTS
        },
        "retrieval": retrieval,
        "probe_auc": {
            d: probe_auc(train.embeddings, train.diagnoses[d], test.embeddings, test.diagnoses[d]) for d in DIAGNOSES
        },
    }
    table["few_shot_auc"] = {k: v for k, v in table["few_shot_auc"].items() if not all(map(math.isnan, v.values()))}
    return table, {f: (test.findings[f], finding_scores[f]) for f in FINDINGS}


def _nanmean(values: Any) -> float:
    array = np.array(list(values), dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else float("nan")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
