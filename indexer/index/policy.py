"""Which FAISS index to build: a written rule from the number of vectors, their dimension and a memory budget.

The rule (autofaiss's idea, without its silent fallbacks):

1. ``n <= EXACT_MAX_VECTORS`` -> ``"Flat"``: exact inner product. Measured on the 2-core development machine at
   D = 256 (bench/search_bench.py): a single-query flat scan costs ~0.2 ms per 1,000 vectors (about 2 ms at 10k,
   10 ms at 100k, noisy on shared cores). A query's whole budget is 20 ms and encoding the text takes ~8-10 ms
   on CPU, so the scan gets ~5 ms: about 20k vectors at D = 256, fewer at larger D (scan cost grows with n * D).
2. Beyond that, ``"IVF{nlist},Flat"`` (nlist a power of two near 4 sqrt(n); float32 vectors in inverted lists,
   recall tuned by ``nprobe``) when the vectors fit the memory budget. Measured against HNSW32 (efConstruction 64)
   on clustered D = 256 vectors with far, text-like queries (bench/search_bench.py data, 2 cores, 1 thread):
   at 100k, IVF1024 reaches recall@10 0.98 at nprobe 16 in 0.13 ms where HNSW32 needs efSearch 512 for 0.96 in
   0.7 ms; at 1M, IVF4096 reaches 0.99 at nprobe 64 in 1.4 ms where HNSW32 stalls at 0.66 (efSearch 512). IVF
   also reaches any recall target by raising nprobe (nprobe = nlist is exact), keeps the full vectors for exact
   subset scans, and honours ``IDSelector`` on CPU. HNSW stays available by explicit key.
3. Otherwise ``"IVF{nlist},SQ8"``: 4x smaller codes, recall tuned the same way.
"""

from __future__ import annotations

import math

# Largest n searched exactly, at the reference dimension below (scaled by D for other dimensions).
EXACT_MAX_VECTORS = 20_000
REFERENCE_DIM = 256
DEFAULT_MEMORY_BUDGET = 8 * 1024**3


def exact_max(dim: int) -> int:
    """The exact-search threshold at dimension ``dim`` (scan cost is proportional to n * D)."""
    return max(1_000, EXACT_MAX_VECTORS * REFERENCE_DIM // max(dim, 1))


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 4 sqrt(n) (faiss's guideline is 4-16 sqrt(n))."""
    return 1 << round(math.log2(4 * math.sqrt(max(n, 1))))


def ivf_flat_bytes(n: int, dim: int) -> int:
    """Memory of an IVF-Flat index: float32 vectors and int64 ids in the lists, centroids, the IDMap2's id arrays."""
    return n * (4 * dim + 8) + nlist_for(n) * 4 * dim + 16 * n


def choose_index_key(n: int, dim: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> str:
    """The FAISS factory key for ``n`` vectors of dimension ``dim`` (see the module docstring)."""
    if n < 0 or dim <= 0:
        raise ValueError(f"bad index size n={n}, dim={dim}")
    if n <= exact_max(dim):
        return "Flat"
    nlist = nlist_for(n)
    if ivf_flat_bytes(n, dim) <= memory_budget:
        return f"IVF{nlist},Flat"
    return f"IVF{nlist},SQ8"
