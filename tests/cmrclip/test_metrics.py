from __future__ import annotations

import math

import numpy as np
import pytest

from cmrclip.train.metrics import (
    auc,
    few_shot_auc,
    first_positive_ranks,
    median_rank,
    precision_at_k,
    prototype_scores,
    recall_at_k,
    retrieval_metrics,
)


def test_ranks_recall_and_median_by_hand():
    sim = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.3], [0.1, 0.7, 0.4]])
    ranks = first_positive_ranks(sim, np.eye(3, dtype=bool))
    # row 0: own 0.9 is best -> 1; row 1: own 0.2 is last of 3 -> 3; row 2: own 0.4 below 0.7 -> 2
    assert ranks.tolist() == [1, 3, 2]
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 2) == pytest.approx(2 / 3)
    assert median_rank(ranks) == 2


def test_ties_rank_pessimistically():
    assert first_positive_ranks(np.array([[0.5, 0.5, 0.1]]), np.array([[False, True, False]])).tolist() == [2]


def test_retrieval_counts_identical_texts_as_matches():
    texts = ["Normal study.", "normal  study.", "Dilated LV."]
    sim = np.array([[0.1, 0.9, 0.0], [0.9, 0.1, 0.0], [0.0, 0.5, 0.4]])  # texts x studies
    out = retrieval_metrics(sim, texts)
    assert out["t2v_r1"] == pytest.approx(2 / 3)  # text 2's study ranks 2nd
    assert out["t2v_median_rank"] == 1
    # v2t: study 2's best text is text 2 (0.4 vs 0.0, 0.0) -> rank 1; study 1 -> text 0 (0.9), a match
    assert out["v2t_r1"] == 1.0
    assert set(out) == {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("r1", "r5", "r10", "r50", "median_rank")}


def test_precision_at_10_by_hand():
    scores = np.arange(20, dtype=float)  # the top 10 are indices 10..19
    labels = np.zeros(20, dtype=bool)
    labels[[19, 18, 15, 3]] = True
    assert precision_at_k(scores, labels, 10) == pytest.approx(0.3)
    assert precision_at_k(scores[:4], labels[:4], 10) == pytest.approx(0.25)
    # 4 positives: the attainable version looks at the top 4 (19, 18, 17, 16), two of them positive
    assert precision_at_k(scores, labels, 10, attainable=True) == pytest.approx(0.5)
    assert precision_at_k(scores, labels >= 0, 10, attainable=True) == pytest.approx(1.0)


def test_prototype_classifier_by_hand():
    pos = np.array([[1.0, 0.0], [1.0, 0.2]])
    neg = np.array([[0.0, 1.0], [0.2, 1.0]])
    queries = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    scores = prototype_scores(pos, neg, queries)
    # prototypes are symmetric about the diagonal, so the diagonal query scores 0
    c = 1 / math.hypot(1.0, 0.1)
    assert scores == pytest.approx([c - 0.1 * c, 0.1 * c - c, 0.0], abs=1e-9)


def test_few_shot_auc_separable_and_skips_large_shots():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2 == 0
    x = np.where(y[:, None], [1.0, 0.0], [0.0, 1.0]) + rng.normal(0, 0.05, (40, 2))
    assert few_shot_auc(x, y, x, y, shots=2, episodes=10) == 1.0
    assert math.isnan(few_shot_auc(x, y, x, y, shots=32, episodes=10))  # only 20 per class


def test_auc_is_nan_for_one_class():
    assert math.isnan(auc(np.ones(4, dtype=bool), np.arange(4)))
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
