"""Which FAISS index to build: a written rule from the number of vectors, their dimension and a memory budget.

The rule (autofaiss's idea, without its silent fallbacks):

1. ``n <= EXACT_MAX_VECTORS`` -> ``"Flat"``: exact inner product. Measured on the 2-core development machine at
   D = 256 (bench/search_bench.py): a single-query flat scan costs ~0.2 ms per 1,000 vectors (about 2 ms at 10k,
   10 ms at 100k, noisy on shared cores). A query's whole budget is 20 ms and encoding the text takes ~8-10 ms
   on CPU, so the scan gets ~5 ms: about 20k vectors at D = 256, fewer at larger D (scan cost grows with n * D).
2. Beyond that, ``"HNSW32"`` (flat storage + graph: ~0.5 ms per query at 100k-1M, recall tuned by ``efSearch``)
   when its memory (vectors + graph links) fits the budget.
3. Otherwise ``"IVF{nlist},SQ8"``: 4x smaller codes, recall tuned by ``nprobe``.
"""

from __future__ import annotations

import math

# Largest n searched exactly, at the reference dimension below (scaled by D for other dimensions).
EXACT_MAX_VECTORS = 20_000
REFERENCE_DIM = 256
HNSW_M = 32
DEFAULT_MEMORY_BUDGET = 8 * 1024**3


def exact_max(dim: int) -> int:
    """The exact-search threshold at dimension ``dim`` (scan cost is proportional to n * D)."""
    return max(1_000, EXACT_MAX_VECTORS * REFERENCE_DIM // max(dim, 1))


def hnsw_bytes(n: int, dim: int, m: int = HNSW_M) -> int:
    """Memory of an HNSW-Flat index: float32 vectors + ~2M links of 4 bytes per vector at level 0 (+ upper levels)."""
    return n * (4 * dim + int(4 * 2 * m * 1.1)) + 8 * n  # + the IDMap2's id arrays


def choose_index_key(n: int, dim: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> str:
    """The FAISS factory key for ``n`` vectors of dimension ``dim`` (see the module docstring)."""
    if n < 0 or dim <= 0:
        raise ValueError(f"bad index size n={n}, dim={dim}")
    if n <= exact_max(dim):
        return "Flat"
    if hnsw_bytes(n, dim) <= memory_budget:
        return f"HNSW{HNSW_M}"
    nlist = 1 << round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist},SQ8"
