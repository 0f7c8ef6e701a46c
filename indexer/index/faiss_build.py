"""Building FAISS indexes from (ids, vectors): small functions on numpy arrays.

Every index is an ``IndexIDMap2`` whose ids are catalog study ids. Approximate indexes get their search parameter
tuned against exact search on a sample, to a recall@10 target; the tuned parameter goes into the build's params.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from catalog.search_params import search_parameters
from indexer.index.policy import DEFAULT_MEMORY_BUDGET, choose_index_key

log = logging.getLogger(__name__)

RECALL_TARGET = 0.95
RECALL_K = 10
TUNING_QUERIES = 500
# Norm of the noise added to a unit vector to make a tuning query: cosine 1 / sqrt(1 + 2.5**2) ~ 0.37.
QUERY_NOISE = 2.5
EF_CONSTRUCTION = 64
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_STEPS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# k-means wants ~40 training points per centroid (faiss warns below 39); never fewer than this many.
MIN_TRAIN_POINTS = 256 * 64
TRAIN_POINTS_PER_LIST = 40


@dataclass
class BuiltIndex:
    index: faiss.Index
    index_key: str
    # {"search": {"efSearch": 48}, "recall_at_10": 0.97, "tuning_queries": 500, "build_seconds": 1.2, ...}
    params: dict[str, Any]


def knn_exact(database: np.ndarray, queries: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    """Row positions of the exact top-k inner-product neighbours, streaming over the database in chunks."""
    k = min(k, len(database))
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(database), chunk):
        scores = queries @ database[start : start + chunk].T
        top = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = RECALL_K) -> float:
    """Mean fraction of the true top-k found in the returned top-k (faiss.contrib's knn_intersection_measure)."""
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / max(1, truth[:, :k].size)


def tuning_queries(vectors: np.ndarray, n: int = TUNING_QUERIES, seed: int = 0) -> np.ndarray:
    """Query-like vectors: sampled database vectors plus noise, renormalised (cosine ~0.37 to their source).

    Text queries sit far from the study vectors (CLIP's modality gap: a matching pair has a cosine of ~0.3-0.5),
    and approximate search is hardest for such far queries; tuning on near copies would overstate recall.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(vectors), size=min(n, len(vectors)), replace=False)
    noise = rng.standard_normal((len(picks), vectors.shape[1])).astype(np.float32)
    noise *= QUERY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    queries = vectors[picks] + noise
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def _tune(index: faiss.Index, index_key: str, vectors: np.ndarray, ids: np.ndarray, target: float) -> dict[str, Any]:
    queries = tuning_queries(vectors)
    truth = ids[knn_exact(vectors, queries, RECALL_K)]
    if index_key.startswith("HNSW"):
        name, steps = "efSearch", EF_SEARCH_STEPS
    else:
        nlist = faiss.extract_index_ivf(index).nlist
        # ending at nlist (an exhaustive scan), so an IVF index always reaches the target, at some latency
        name, steps = "nprobe", (*(s for s in NPROBE_STEPS if s < nlist), nlist)
    recall = 0.0
    for value in steps:
        _, found = index.search(queries, RECALL_K, params=search_parameters(index_key, {name: value}))
        recall = recall_at_k(found, truth)
        log.info("tuning %s: %s=%d recall@%d=%.3f", index_key, name, value, RECALL_K, recall)
        if recall >= target:
            return {"search": {name: value}, f"recall_at_{RECALL_K}": recall, "tuning_queries": len(queries)}
    raise ValueError(
        f"{index_key} reaches recall@{RECALL_K}={recall:.3f} < {target} at {name}={steps[-1]}; "
        "use an IVF index (the default rule) or an exact one"
    )


def build_index(
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    index_key: str | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    recall_target: float = RECALL_TARGET,
) -> BuiltIndex:
    """An ``IndexIDMap2`` over ``vectors`` with ``ids``; the key follows ``index_policy`` unless given."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"ids {ids.shape} and vectors {vectors.shape} do not line up")
    dim = vectors.shape[1]
    key = index_key or choose_index_key(len(ids), dim, memory_budget)
    start = time.perf_counter()
    inner = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    if key.startswith("HNSW"):
        inner.hnsw.efConstruction = EF_CONSTRUCTION
    if not inner.is_trained:
        rng = np.random.default_rng(0)
        ivf = faiss.try_extract_index_ivf(inner)
        wanted = max(MIN_TRAIN_POINTS, TRAIN_POINTS_PER_LIST * (ivf.nlist if ivf is not None else 0))
        train = vectors[rng.choice(len(vectors), size=min(len(vectors), wanted), replace=False)]
        inner.train(train)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(vectors, ids)
    params: dict[str, Any] = {"search": {}, "dim": dim}
    if key.startswith("HNSW"):
        params["efConstruction"] = EF_CONSTRUCTION
    build_seconds = time.perf_counter() - start
    if key != "Flat" and len(ids):
        params.update(_tune(index, key, vectors, ids, recall_target))
    params["build_seconds"] = round(build_seconds, 3)
    return BuiltIndex(index, key, params)


def add_to_index(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Add vectors to a live index (no rebuild); ids must be new to it."""
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))


def write_index(index: faiss.Index, path: Path) -> Path:
    """Write to a temporary file beside ``path``, then rename into place (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    faiss.write_index(index, str(tmp))
    tmp.replace(path)
    return path
