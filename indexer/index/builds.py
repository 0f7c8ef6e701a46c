"""FAISS builds from the durable vector store: full or incremental, written aside, switched active atomically.

The index is a rebuildable cache of ``study_vectors``. A build is written to a temporary file and renamed into
``index_dir``; only then is its ``index_builds`` row inserted and made the active one of its kind, in one
transaction, so the previous index keeps serving until the new one is complete.

Incremental: when the active build is from the same checkpoint, still holds only live studies and the policy
still picks its index key, new vectors are added to a copy of it (no retraining, no re-tuning). Otherwise
(new checkpoint, withdrawn or deleted studies to drop, a size that calls for another index type, ``rebuild``)
the index is built from scratch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from catalog.builds import activate_build, active_builds, builds_of
from catalog.db import session_scope
from catalog.models import IndexBuild
from catalog.vectors import vector_ids, vectors_of
from indexer.index.faiss_build import add_to_index, build_index, write_index
from indexer.index.policy import DEFAULT_MEMORY_BUDGET, choose_index_key

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("video", "report")
# Index files kept per kind: the active one and its predecessor (a process may still be opening it).
KEEP_FILES = 2


@dataclass(frozen=True)
class BuildResult:
    kind: str
    # "full", "incremental", "unchanged" or "empty" (no vectors of this kind yet)
    action: str
    build_id: int | None
    index_key: str | None
    n_vectors: int
    added: int
    seconds: float


def _index_path(index_dir: Path, kind: str, checkpoint_hash: str) -> Path:
    return Path(index_dir) / f"{kind}-{checkpoint_hash}-{time.time_ns()}.faiss"


def update_index(
    url: str,
    checkpoint_hash: str,
    kind: str,
    index_dir: Path,
    *,
    rebuild: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> BuildResult:
    """Bring the active index of ``kind`` in line with the stored vectors of ``checkpoint_hash``."""
    if kind not in KINDS:
        raise ValueError(f"unknown vector kind {kind!r}; expected one of {KINDS}")
    start = time.perf_counter()
    with session_scope(url) as session:
        active = active_builds(session).get(kind)
        current = vector_ids(session, checkpoint_hash, kind)
    if len(current) == 0:
        return BuildResult(kind, "empty", None, None, 0, 0, time.perf_counter() - start)
    held = np.array(sorted(active.study_ids), dtype=np.int64) if active else np.zeros(0, dtype=np.int64)
    new = np.setdiff1d(current, held)
    incremental = (
        not rebuild
        and active is not None
        and active.checkpoint_hash == checkpoint_hash
        and Path(active.path).is_file()
        and len(np.setdiff1d(held, current)) == 0
        and choose_index_key(len(current), int(active.params.get("dim", 0)) or 1, memory_budget) == active.index_key
    )
    if incremental and len(new) == 0:
        return BuildResult(kind, "unchanged", active.id, active.index_key, len(held), 0, time.perf_counter() - start)
    path = _index_path(index_dir, kind, checkpoint_hash)
    if incremental:
        with session_scope(url) as session:
            ids, vectors = vectors_of(session, checkpoint_hash, kind, new)
        index = faiss.read_index(active.path)
        add_to_index(index, ids, vectors)
        index_key = active.index_key
        params = {**active.params, "incremental_from": active.id, "added": len(ids)}
        action = "incremental"
    else:
        with session_scope(url) as session:
            ids, vectors = vectors_of(session, checkpoint_hash, kind)
        built = build_index(ids, vectors, memory_budget=memory_budget)
        index, index_key, params = built.index, built.index_key, built.params
        action = "full"
    write_index(index, path)
    study_ids = sorted({*held.tolist(), *ids.tolist()}) if incremental else ids.tolist()
    with session_scope(url) as session:
        build = IndexBuild(
            checkpoint_hash=checkpoint_hash,
            kind=kind,
            path=str(path),
            index_key=index_key,
            n_vectors=int(index.ntotal),
            study_ids=study_ids,
            params=params,
        )
        activate_build(session, build)
        session.flush()
        build_id = build.id
    _remove_old_files(url, kind)
    seconds = time.perf_counter() - start
    log.info("%s %s index %s: %d vectors (+%d) in %.1f s", action, kind, index_key, index.ntotal, len(ids), seconds)
    return BuildResult(kind, action, build_id, index_key, int(index.ntotal), len(ids), seconds)


def _remove_old_files(url: str, kind: str) -> None:
    """Delete index files of all but the newest ``KEEP_FILES`` builds of a kind (their rows stay as history)."""
    with session_scope(url) as session:
        old = [b.path for b in builds_of(session, kind)[KEEP_FILES:]]
    for path in old:
        Path(path).unlink(missing_ok=True)
