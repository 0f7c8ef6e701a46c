"""One loaded FAISS index and its filtered search, with the same results on CPU and GPU.

Filters arrive as an allow-list of study ids (and/or a short deny-list of withdrawn ids) and become a FAISS
``IDSelector`` passed per call in ``SearchParameters`` (pre-filtering: k hits come back whenever k exist):

- allow-list: ``IDSelectorBitmap`` over the dense catalog ids (O(1) membership, built in well under a ms even for
  a million ids; ``IDSelectorBatch`` would hash every id per query);
- deny-list only: ``IDSelectorNot(IDSelectorBatch(denied))``.

Under an allow-list the tuned search parameter is widened by 1 / selectivity (HNSW's efSearch up to
``FILTERED_EF_MAX``, IVF's nprobe up to nlist), so about as many allowed candidates are examined as unfiltered.

Small allow-lists (``SUBSET_EXACT_MAX``) skip the index: the allowed vectors are reconstructed and scanned
exactly, which is faster than an approximate search that rejects most of what it visits, and always returns k
hits.

Classic GPU indexes ignore ``sel`` silently (faiss issues #3924, #3114), so on GPU a filtered search over-fetches
and filters; when that still leaves fewer than k hits it falls back to the exact subset scan (vectors
reconstructed from the CPU copy of the index).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from catalog.search_params import search_parameters

log = logging.getLogger(__name__)

SUBSET_EXACT_MAX = 20_000
# Largest efSearch a filtered HNSW search widens to.
FILTERED_EF_MAX = 1024
# Largest k classic GPU indexes accept.
_GPU_MAX_K = 2048


@dataclass(frozen=True)
class SearchResult:
    """Top hits of one query, best first (ids int64, scores float32 cosine)."""

    ids: np.ndarray
    scores: np.ndarray


def bitmap_selector(allowed: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray]:
    """``IDSelectorBitmap`` of the ids in ``allowed``; keep the returned bitmap alive while the selector is used."""
    mask = np.zeros(int(allowed.max()) + 1 if len(allowed) else 1, dtype=bool)
    mask[allowed] = True
    bitmap = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), bitmap



def stored_ids(index: faiss.IndexIDMap) -> np.ndarray:
    """The ids an ``IndexIDMap`` holds.

    ``faiss.vector_to_array`` checks the SWIG proxy's class name, and another SWIG library loaded after FAISS in the
    same process takes over the ``std::vector<int64_t>`` proxy (SimpleITK, which TorchIO loads for training-time
    augmentation: ``cmr eval --search-modes`` has both). Then the vector is read element by element instead.
    """
    try:
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    except AssertionError:
        return np.fromiter(index.id_map, dtype=np.int64, count=index.id_map.size())


@dataclass
class VectorIndex:
    """A loaded index of one kind ("video" or "report") and the build row facts it was loaded from."""

    kind: str
    build_id: int
    checkpoint_hash: str
    index_key: str
    params: dict[str, Any]
    path: str
    created_at: str
    cpu_index: faiss.Index
    gpu_index: faiss.Index | None = None
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # membership of every id up to the largest, for O(1) ``contains`` (catalog ids are dense: ~1 MB per 1M)
    _member: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._member = np.zeros(int(self.ids.max()) + 1 if len(self.ids) else 0, dtype=bool)
        self._member[self.ids] = True

    @classmethod
    def load(cls, *, path: str, use_gpu: bool, **facts: Any) -> VectorIndex:
        index = faiss.read_index(str(Path(path)))
        ivf = faiss.try_extract_index_ivf(index.index) if hasattr(index, "index") else None
        if ivf is not None:
            ivf.make_direct_map()  # reconstruct() for exact subset scans
        gpu = None
        if use_gpu:
            gpu = faiss.index_cpu_to_all_gpus(index)
        ids = np.sort(stored_ids(index))
        return cls(path=str(path), cpu_index=index, gpu_index=gpu, ids=ids, **facts)

    @property
    def size(self) -> int:
        return int(self.cpu_index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.cpu_index.d)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (all must be in the index)."""
        return self.cpu_index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64))

    def contains(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self._member))
        found = np.zeros(len(ids), dtype=bool)
        found[inside] = self._member[ids[inside]]
        return found

    def search(
        self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None, denied: np.ndarray | None = None
    ) -> SearchResult:
        """Top ``k`` of one query vector among ``allowed`` ids (None: all) minus ``denied`` ids."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        denied = denied if denied is not None and len(denied) else None
        if allowed is not None:
            allowed = _sorted_unique(allowed)
            allowed = allowed[self.contains(allowed)]
            if denied is not None:
                allowed = allowed[~np.isin(allowed, denied)]
            if len(allowed) == 0 or k <= 0:
                return SearchResult(np.zeros(0, np.int64), np.zeros(0, np.float32))
            if len(allowed) <= SUBSET_EXACT_MAX:
                return self._subset_exact(query, k, allowed)
            result = self._search_allowed(query, k, allowed)
            return result if len(result.ids) >= min(k, len(allowed)) else self._subset_exact(query, k, allowed)
        return self._search_denied(query, k, denied)

    def _subset_exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        scores = self.vectors(allowed) @ query[0]
        k = min(k, len(allowed))
        top = np.argpartition(-scores, k - 1)[:k]
        order = top[np.lexsort((allowed[top], -scores[top]))]
        return SearchResult(allowed[order], scores[order].astype(np.float32))

    def _raw(
        self, index: faiss.Index, query: np.ndarray, k: int, sel: faiss.IDSelector | None, selectivity: float = 1.0
    ) -> SearchResult:
        k = min(k, self.size)
        if k <= 0:
            return SearchResult(np.zeros(0, np.int64), np.zeros(0, np.float32))
        search = dict(self.params.get("search", {}))
        if "efSearch" in search and selectivity < 1.0:
            # HNSW walks filtered-out nodes too: widen the beam so ~efSearch allowed nodes stay in it.
            search["efSearch"] = min(FILTERED_EF_MAX, max(k, int(search["efSearch"] / max(selectivity, 1e-6))))
        if "nprobe" in search and selectivity < 1.0:
            # the allowed neighbours lie further out: probe more lists, so ~as many allowed vectors are scanned
            nlist = faiss.extract_index_ivf(self.cpu_index).nlist
            search["nprobe"] = min(nlist, math.ceil(int(search["nprobe"]) / max(selectivity, 1e-6)))
        params = search_parameters(self.index_key, search, sel)
        scores, ids = index.search(query, k, params=params)
        keep = ids[0] >= 0
        return SearchResult(ids[0][keep], scores[0][keep])

    def _search_allowed(self, query: np.ndarray, k: int, allowed: np.ndarray) -> SearchResult:
        if self.gpu_index is None:
            sel, _bitmap = bitmap_selector(allowed)
            return self._raw(self.cpu_index, query, k, sel, selectivity=len(allowed) / max(self.size, 1))
        fetch = min(self.size, _GPU_MAX_K, max(k, int(2 * k * self.size / len(allowed))))
        return _keep(self._raw(self.gpu_index, query, fetch, None), allowed, k)

    def _search_denied(self, query: np.ndarray, k: int, denied: np.ndarray | None) -> SearchResult:
        if denied is None:
            return self._raw(self.gpu_index or self.cpu_index, query, k, None)
        if self.gpu_index is None:
            inner = faiss.IDSelectorBatch(len(denied), faiss.swig_ptr(np.ascontiguousarray(denied, np.int64)))
            return self._raw(self.cpu_index, query, k, faiss.IDSelectorNot(inner))
        if k + len(denied) > _GPU_MAX_K:
            return self.search(query, k, allowed=np.setdiff1d(self.ids, denied))
        # at most len(denied) of the fetched hits are dropped, so k + len(denied) always leaves k
        result = self._raw(self.gpu_index, query, k + len(denied), None)
        return _drop(result, denied, k)


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    """``np.unique`` that returns an already sorted, duplicate-free array (the filter table's) as it is:
    numpy's hash-based unique takes ~180 ms on 500k ids."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return ids
    ids = np.sort(ids)
    return ids[np.concatenate(([True], ids[1:] != ids[:-1]))]


def _keep(result: SearchResult, allowed: np.ndarray, k: int) -> SearchResult:
    mask = np.isin(result.ids, allowed)
    return SearchResult(result.ids[mask][:k], result.scores[mask][:k])


def _drop(result: SearchResult, denied: np.ndarray, k: int) -> SearchResult:
    mask = ~np.isin(result.ids, denied)
    return SearchResult(result.ids[mask][:k], result.scores[mask][:k])
