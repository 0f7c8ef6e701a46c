"""Which search mode finds cases best: precision@10 per diagnosis query for video, report, both (and negation),
and the understood query path; with ``compound``, also compound / negated, numeric, territory and rare-term queries
(a rare term's precision counts only the few studies that have it: read it as recall when they are fewer than k).

    .venv/bin/python -m cmrclip.train.search_modes --truth demo/ground_truth.csv --withhold 0.5

A fraction of the reports is withheld (as if those studies had never been reported): their report vectors are
left out of the report ranking, so "report" can only find reported studies and "both" must lean on the video
signal for the rest, which is the situation hybrid search exists for. Each diagnosis query is the plain-language
``query`` of ``cmrclip/prompts.json``; a hit is relevant when the study's ground truth has the diagnosis.
Ground truth is read by evaluation only, never by the product.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import Study
from cmrclip.prompts import DIAGNOSES, load_prompts
from cmrclip.train.ground_truth import has_diagnosis, has_finding
from cmrclip.train.records import StudyRecord
from cmrclip.train.splits import split_of
from search.engine import Engine
from search.fusion import reciprocal_rank_fusion

log = logging.getLogger(__name__)

VARIANTS: tuple[tuple[str, bool], ...] = (("video", False), ("report", False), ("both", False), ("both", True),
                                          ("understood", False))
# "understood": Engine.query's default path (issue 15): the query parsed into constraints, checked against the
# facts of the reports not withheld, else judged by the images' calibrated per-finding probabilities, plus free
# text and full text. The other variants rank by embedding alone.

# Numeric, territory and rare-term queries (issue 15): relevance from ground truth numbers and columns.
NUMERIC_QUERIES: tuple[tuple[str, Any], ...] = (
    ("EF around 25 percent", lambda t: _num(t, "lvef") is not None and 18 <= _num(t, "lvef") <= 32),
    ("LVEF below 35%", lambda t: _num(t, "lvef") is not None and _num(t, "lvef") < 37),
    ("preserved ejection fraction", lambda t: _num(t, "lvef") is not None and _num(t, "lvef") >= 50),
    ("maximal wall thickness 19 mm", lambda t: _num(t, "lv_max_wall_mm") is not None
     and _num(t, "lv_max_wall_mm") >= 15),
    ("thick septum with preserved ejection fraction",
     lambda t: has_finding(t, "lv_hypertrophy") and (_num(t, "lvef") or 0) >= 50),
)
TERRITORY_QUERIES: tuple[tuple[str, Any], ...] = (
    ("subendocardial LGE in the LAD territory", lambda t: str(t.get("territory", "")).upper() == "LAD"
     and "subendo" in str(t.get("lge_pattern", "")).lower()),
    ("inferior wall infarct", lambda t: str(t.get("territory", "")).upper() == "RCA"),
    ("lateral wall scar", lambda t: str(t.get("territory", "")).upper() == "LCX"),
    ("mid-wall LGE", lambda t: "mid" in str(t.get("lge_pattern", "")).lower()),
)
RARE_QUERIES: tuple[tuple[str, str], ...] = (
    ("Fabry", "fabry"), ("LV non-compaction", "lv_non_compaction"), ("sarcoid", "sarcoidosis"),
    ("Takotsubo", "takotsubo"),
)


def _num(truth: Mapping[str, Any], name: str) -> float | None:
    try:
        return float(truth.get(name))
    except (TypeError, ValueError):
        return None

# Negated and compound queries (the known weakness of CLIP-style search): a hit is relevant when its ground truth
# has every finding in ``need`` and none in ``exclude``.
COMPOUND_QUERIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("no late gadolinium enhancement", (), ("lge_present",)),
    ("dilated left ventricle without late gadolinium enhancement", ("lv_dilation",), ("lge_present",)),
    ("left ventricular hypertrophy without late gadolinium enhancement", ("lv_hypertrophy",), ("lge_present",)),
    ("late gadolinium enhancement with normal left ventricular size", ("lge_present",), ("lv_dilation",)),
    ("dilated left ventricle with poor function", ("lv_dilation", "lv_systolic_dysfunction"), ()),
    ("dilated left ventricle and pericardial effusion", ("lv_dilation", "pericardial_effusion"), ()),
    ("reduced left ventricular function and late gadolinium enhancement",
     ("lv_systolic_dysfunction", "lge_present"), ()),
)


def ranked_ids(
    engine: Engine,
    text: str,
    mode: str,
    k: int,
    withheld: np.ndarray,
    negation: bool,
    allowed: np.ndarray | None = None,
) -> list[int]:
    """The engine's ranking (same vectors, indexes and fusion) over ``allowed`` studies, with withheld reports
    left out of the report side."""
    vector = engine.query_vector(text, negation=negation)
    indexes = engine.indexes
    kinds = ("video", "report") if mode == "both" else (mode,)
    depth = k if len(kinds) == 1 else max(3 * k, 30)
    lists = {
        kind: indexes[kind]
        .search(vector, depth, allowed=allowed, denied=withheld if kind == "report" else None)
        .ids.tolist()
        for kind in kinds
        if kind in indexes
    }
    return [i for i, _ in reciprocal_rank_fusion(lists)][:k]


def precision_at_k(
    engine: Engine,
    truth: Mapping[str, Mapping[str, Any]],
    *,
    withhold: float = 0.5,
    k: int = 10,
    seed: int = 0,
    diagnoses: Sequence[str] = DIAGNOSES,
    variants: Sequence[tuple[str, bool]] = VARIANTS,
    holdout_site: str | None = None,
    compound: bool = False,
) -> list[dict[str, Any]]:
    """Per diagnosis a row: the query and precision@k of each (mode, negation) variant, plus the mean row;
    with ``compound``, also a row per ``COMPOUND_QUERIES`` entry and their mean ("compound mean").

    Only studies the model never trained on are searched and counted: the test split and the held-out site.
    """
    uid_of, splits = _splits(engine, holdout_site)
    evaluated = _ids_in(splits, ("test", "external"))
    reported = np.array(sorted(engine.indexes["report"].ids if "report" in engine.indexes else []), dtype=np.int64)
    reported = reported[np.isin(reported, evaluated)]
    rng = np.random.default_rng(seed)
    withheld = np.sort(rng.choice(reported, size=int(round(withhold * len(reported))), replace=False))
    prompts = load_prompts()["diagnoses"]
    cases = [
        (name, prompts[name].query, lambda t, name=name: has_diagnosis(t, name))
        for name in diagnoses
        if name in prompts and prompts[name].query
    ]
    if compound:
        cases += [
            ("compound", query, lambda t, need=need, exclude=exclude: all(has_finding(t, f) for f in need)
             and not any(has_finding(t, f) for f in exclude))
            for query, need, exclude in COMPOUND_QUERIES
        ]
        cases += [("numeric", q, rel) for q, rel in NUMERIC_QUERIES]
        cases += [("territory", q, rel) for q, rel in TERRITORY_QUERIES]
        present = {str(t.get("rare_diagnosis") or "") for t in truth.values()}
        cases += [("rare", q, lambda t, d=d: str(t.get("rare_diagnosis") or "") == d)
                  for q, d in RARE_QUERIES if d in present]
    rows = []
    for name, query, is_relevant in cases:
        relevant = sum(1 for i in evaluated.tolist() if uid_of.get(i) in truth and is_relevant(truth[uid_of[i]]))
        row: dict[str, Any] = {"diagnosis": name, "query": query, "relevant": relevant}
        for mode, negation in variants:
            if mode == "understood":
                hits = engine.query(query, k=min(4 * k, 1000), among=evaluated, hidden_reports=withheld)
                ranked = [h.study_id for h in hits]
            else:
                ranked = ranked_ids(engine, query, mode, 4 * k, withheld, negation, allowed=evaluated)
            ids = [i for i in ranked if uid_of.get(i) in truth]
            row[_label(mode, negation)] = sum(is_relevant(truth[uid_of[i]]) for i in ids[:k]) / k
        rows.append(row)
    labels = [_label(m, n) for m, n in variants]
    groups = ("compound", "numeric", "territory", "rare")
    for group in ("diagnosis", *groups):
        members = [r for r in rows if (r["diagnosis"] == group) if group in groups] if group in groups else [
            r for r in rows if r["diagnosis"] not in groups]
        if members:
            means = {lab: float(np.mean([r[lab] for r in members])) for lab in labels}
            rows.append({"diagnosis": "mean" if group == "diagnosis" else f"{group} mean", "query": "", **means})
    return rows


def _splits(engine: Engine, holdout_site: str | None) -> tuple[dict[int, str], dict[int, str]]:
    """Study id -> UID, and study id -> split (train, val, test, external) as the checkpoint's training saw it."""
    holdout = holdout_site or engine.meta.training.get("holdout_site")
    with session_scope(engine.url) as session:
        rows = session.execute(select(Study.id, Study.study_uid, Study.patient_key, Study.institution)).all()
    return ({r[0]: r[1] for r in rows},
            {r[0]: split_of(StudyRecord(r[0], r[1], Path(), None, r[2], r[3] or ""), holdout) for r in rows})


def _ids_in(splits: Mapping[int, str], names: tuple[str, ...]) -> np.ndarray:
    return np.array(sorted(i for i, s in splits.items() if s in names), dtype=np.int64)


EXAMPLE_SHOTS = (1, 3, 5)


def by_example(
    engine: Engine,
    truth: Mapping[str, Mapping[str, Any]],
    *,
    shots: Sequence[int] = EXAMPLE_SHOTS,
    episodes: int = 5,
    k: int = 10,
    seed: int = 0,
    diagnoses: Sequence[str] = DIAGNOSES,
    holdout_site: str | None = None,
) -> list[dict[str, Any]]:
    """Query by example against the diagnosis' words: per diagnosis, precision@k over unseen studies (test split
    and held-out site) of its plain-language query ("text": understood, every report visible; "text, video only":
    the query's embedding against the video index alone, what examples compete with), of ``n`` example studies
    with that diagnosis drawn from the training split ("n-shot", the mean over ``episodes`` draws), and of the text
    with 3 examples; plus the mean row. Examples are studies a user already knows; only unseen studies are
    searched and counted."""
    from search.examples import Examples

    uid_of, splits = _splits(engine, holdout_site)
    evaluated = _ids_in(splits, ("test", "external"))
    train = _ids_in(splits, ("train",))
    prompts = load_prompts()["diagnoses"]
    rng = np.random.default_rng(seed)

    def precision(ranked: list[int], name: str) -> float:
        ids = [i for i in ranked if uid_of.get(i) in truth]
        return sum(has_diagnosis(truth[uid_of[i]], name) for i in ids[:k]) / k

    def found(hits) -> list[int]:
        return [h.study_id for h in hits]

    rows = []
    for name in diagnoses:
        if name not in prompts or not prompts[name].query:
            continue
        pool = [i for i in train.tolist() if uid_of.get(i) in truth and has_diagnosis(truth[uid_of[i]], name)]
        if len(pool) < max(shots):
            continue
        query = prompts[name].query
        video_only = ranked_ids(engine, query, "video", k, np.zeros(0, np.int64), False, allowed=evaluated)
        row: dict[str, Any] = {"diagnosis": name, "query": query,
                               "text": precision(found(engine.query(query, k=k, among=evaluated)), name),
                               "text, video only": precision(video_only, name)}
        for n in (*shots, "text+3"):
            values = []
            for _ in range(episodes):
                like = tuple(int(i) for i in rng.choice(pool, 3 if n == "text+3" else n, replace=False))
                text = query if n == "text+3" else ""
                hits = engine.query(text, k=k, among=evaluated, examples=Examples(like=like))
                values.append(precision(found(hits), name))
            row[f"{n}-shot" if n != "text+3" else "text+3"] = float(np.mean(values))
        rows.append(row)
    if rows:
        labels = [c for c in rows[0] if c not in ("diagnosis", "query")]
        rows.append({"diagnosis": "mean", "query": "", **{c: float(np.mean([r[c] for r in rows])) for c in labels}})
    return rows


def examples_table(rows: list[dict], k: int) -> str:
    """``by_example`` as Markdown."""
    if not rows:
        return "query by example: no diagnosis has enough training studies to draw examples from"
    labels = [c for c in rows[0] if c not in ("diagnosis", "query")]
    lines = [f"query by example: precision@{k} on unseen studies (examples from the training split)", "",
             "| diagnosis | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {r['diagnosis']} | " + " | ".join(f"{r[c]:.2f}" for c in labels) + " |" for r in rows]
    return "\n".join(lines)


def planted_errors_found(engine: Engine, truth: Mapping[str, Mapping[str, Any]], *, k: int = 20) -> dict[str, Any]:
    """How many of the discrepancy list's top ``k`` (``Engine.discrepancies``) are reports with a planted error
    (the phantom's ``report_error``) listed under the finding the error is about, against how many the archive
    holds."""
    uid_of, _ = _splits(engine, None)
    listed = engine.discrepancies(k=k)
    planted = {uid for uid, t in truth.items() if t.get("report_error")}
    hits = [(uid_of.get(h.study_id), d) for h, d in listed]
    # a planted error counts when the list names its finding (not another finding of the same study)
    found = [(uid, d) for uid, d in hits if uid in planted and truth[uid]["report_error"].split(":")[-1] == d.finding]
    return {"k": k, "listed": len(listed), "planted_in_top": len(found), "planted_in_archive": len(planted),
            "found": [f"{truth[uid]['report_error']} -> {d.finding} ({d.report}, images {d.image_probability:.2f})"
                      for uid, d in found]}


def _label(mode: str, negation: bool) -> str:
    return f"{mode}+negation" if negation else mode


def markdown_table(rows: list[dict], k: int, withhold: float) -> str:
    """The precision table as Markdown, one row per query and a mean per group."""
    labels = [_label(m, n) for m, n in VARIANTS]
    lines = [f"precision@{k}, {withhold:.0%} of reports withheld; relevant: how many unseen studies are relevant (with "
             f"fewer than {k}, the best precision is relevant/{k})", "",
             "| diagnosis | query | relevant | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    lines += [f"| {r['diagnosis']} | {r['query']} | {r.get('relevant', '')} | "
              + " | ".join(f"{r[lab]:.2f}" for lab in labels) + " |" for r in rows]
    return "\n".join(lines)
