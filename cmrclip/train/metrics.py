"""Evaluation metrics on numpy arrays (no model code): ranking, classification, few-shot, probes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

RECALL_KS: tuple[int, ...] = (1, 5, 10, 50)
FEW_SHOTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)


def first_positive_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked positive per query row (``scores``/``positives`` ``[Q, N]``).

    Ties are broken pessimistically: a positive ranks after every non-positive with the same score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    if not positives.any(axis=1).all():
        raise ValueError("every query needs at least one positive")
    best = np.where(positives, scores, -np.inf).max(axis=1)
    return 1 + ((scores >= best[:, None]) & ~positives).sum(axis=1)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(np.asarray(ranks) <= k))


def median_rank(ranks: np.ndarray) -> float:
    return float(np.median(ranks))


def retrieval_metrics(similarity: np.ndarray, texts: Sequence[str]) -> dict[str, float]:
    """Text<->video retrieval from ``similarity [N texts, N studies]`` where text i describes study i.

    A study counts as a correct match for a text when its own text is identical (normalised case and spaces):
    reports often share an impression word for word ("Normal study."), and those studies are interchangeable.
    """
    keys = np.array([" ".join(t.lower().split()) for t in texts])
    positives = keys[:, None] == keys[None, :]
    out: dict[str, float] = {}
    for prefix, scores in (("t2v", similarity), ("v2t", np.asarray(similarity).T)):
        ranks = first_positive_ranks(scores, positives)
        out.update({f"{prefix}_r{k}": recall_at_k(ranks, k) for k in RECALL_KS})
        out[f"{prefix}_median_rank"] = median_rank(ranks)
    return out


def precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int = 10, attainable: bool = False) -> float:
    """Fraction of positives among the ``k`` highest scores (fewer when there are fewer items).

    ``attainable``: look at ``min(k, number of positives)`` items, so that a perfect ranking scores 1 even when a
    small test split holds fewer than ``k`` positives (R-precision for rare classes).
    """
    if attainable:
        k = max(1, min(k, int(np.count_nonzero(labels))))
    top = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.mean(np.asarray(labels, dtype=bool)[top])) if len(top) else float("nan")


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=bool)
    return float(average_precision_score(labels, scores)) if labels.any() else float("nan")


def prototype_scores(support_pos: np.ndarray, support_neg: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Prototype classifier: cosine to the positive class mean minus cosine to the negative class mean."""

    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(float(np.linalg.norm(v)), 1e-12)

    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return queries @ unit(support_pos.mean(axis=0)) - queries @ unit(support_neg.mean(axis=0))


def few_shot_auc(
    train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray, shots: int,
    episodes: int = 100, seed: int = 0,
) -> float:
    """Mean AUC over episodes of a prototype classifier from ``shots`` examples per class of the train set.

    NaN when the train set has fewer than ``shots`` of either class or the eval set only one class.
    """
    train_y, eval_y = np.asarray(train_y, dtype=bool), np.asarray(eval_y, dtype=bool)
    pos, neg = np.flatnonzero(train_y), np.flatnonzero(~train_y)
    if len(pos) < shots or len(neg) < shots or eval_y.all() or not eval_y.any():
        return float("nan")
    rng = np.random.default_rng(seed)
    aucs = [
        auc(eval_y, prototype_scores(train_x[rng.choice(pos, shots, replace=False)],
                                     train_x[rng.choice(neg, shots, replace=False)], eval_x))
        for _ in range(episodes)
    ]
    return float(np.mean(aucs))


def probe_auc(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray) -> float:
    """AUC of a linear probe (balanced logistic regression) on frozen embeddings; NaN if a class is missing."""
    train_y, eval_y = np.asarray(train_y, dtype=bool), np.asarray(eval_y, dtype=bool)
    if train_y.all() or not train_y.any():
        return float("nan")
    probe = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    probe.fit(train_x, train_y)
    return auc(eval_y, probe.decision_function(eval_x))
