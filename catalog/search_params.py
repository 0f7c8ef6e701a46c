"""An index build's tuned search parameter (``IndexBuild.params["search"]``) as FAISS per-call parameters.

The indexer tunes it against exact search (``indexer.index.faiss_build``) and search serves with it
(``search.vector_index``); both read it through this one function. It lives with the build row because that row
is what the two rooms share (neither may import the other).

A build always stores its tuned value; the defaults below only stand in for a build row without one, and are
the measured ones (bench/RESULTS.md, clustered D = 256 vectors, text-like queries, 100k vectors): IVF1024 reaches
recall@10 0.98 at nprobe 16, HNSW32 reaches 0.96 only at efSearch 512.
"""

from __future__ import annotations

from typing import Any

import faiss

DEFAULT_SEARCH: dict[str, int] = {"nprobe": 16, "efSearch": 512}


def search_parameters(
    index_key: str, search: dict[str, Any], sel: faiss.IDSelector | None = None
) -> faiss.SearchParameters:
    """Fresh per-call parameters (efSearch or nprobe, and a selector) for an index of ``index_key``; the shared
    index is never modified (clip-retrieval's lesson: a per-request ``nprobe`` on a shared index races)."""
    if index_key.startswith("HNSW"):
        params = faiss.SearchParametersHNSW(efSearch=int(search.get("efSearch", DEFAULT_SEARCH["efSearch"])))
    elif index_key.startswith("IVF"):
        params = faiss.SearchParametersIVF(nprobe=int(search.get("nprobe", DEFAULT_SEARCH["nprobe"])))
    else:
        params = faiss.SearchParameters()
    if sel is not None:
        params.sel = sel
    return params
