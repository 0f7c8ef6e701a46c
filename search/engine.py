"""The query engine: text or a study in, ranked hits joined with catalog rows out.

One ``Engine`` serves concurrent queries. It loads the checkpoint and the active indexes once; per query it
builds only local values (query vector, allow-list, per-call FAISS parameters). The loaded indexes form one
immutable snapshot that ``refresh()`` swaps for a new one when ``cmr index`` has activated another build, so an
incremental add shows up within ``refresh_seconds`` without reopening. Withdrawn studies are excluded at query
time through the catalog, so they vanish at once, before the next build drops them from the index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from catalog import search_queries
from catalog.db import DatabaseUnavailable, check_connection, safe_url, session_scope
from catalog.models import IndexBuild
from catalog.settings import Settings, get_settings
from cmrclip.checkpoint import CheckpointMeta, load_checkpoint, read_checkpoint_meta
from cmrclip.inference import pick_device
from cmrclip.model import CMRClip
from search.checkpoints import resolve_checkpoint
from search.errors import BadQuery, IndexMismatch, IndexMissing, SearchError, UnknownStudy
from search.filter_table import FilterTable, catalog_signature
from search.filters import Filters
from search.fusion import DEFAULT_MODE, MODES, reciprocal_rank_fusion
from search.hits import Hit, make_hit
from search.query_text import NEGATION_WEIGHT, normalise_query, split_negation
from search.vector_index import SearchResult, VectorIndex

log = logging.getLogger(__name__)

MAX_K = 1_000
# Candidates taken from each signal before fusing, relative to k.
FUSION_DEPTH = 3
FUSION_MIN_CANDIDATES = 30
QUERY_CACHE_SIZE = 4096

# Threads per query: one. A single query gains little from intra-op parallelism (FAISS parallelises over queries;
# a short text is a few small matmuls), while spinning OpenMP/torch pools contend with each other and with the
# other requests: measured on 2 busy cores, a short query took ~480 ms to encode with 2 torch threads, ~45 ms with 1.
# Concurrency comes from serving several queries on several threads instead.
QUERY_THREADS = 1
_threads_once = threading.Lock()
_threads_set = False


def _set_threads(torch_threads: int | None) -> None:
    """Set FAISS's OpenMP threads (and torch's, unless None) once per process, never per query."""
    global _threads_set
    with _threads_once:
        if not _threads_set:
            faiss.omp_set_num_threads(QUERY_THREADS)
            if torch_threads is not None:
                torch.set_num_threads(torch_threads)
            _threads_set = True


@dataclass(frozen=True)
class _Snapshot:
    """The indexes and filter columns a query runs against; replaced whole, never modified."""

    indexes: dict[str, VectorIndex]
    table: FilterTable | None  # None until the first refresh


class Engine:
    def __init__(
        self, *, url: str, model: CMRClip, meta: CheckpointMeta, checkpoint: Path, refresh_seconds: float = 10.0
    ) -> None:
        self.url = url
        self.model = model
        self.meta = meta
        self.checkpoint = checkpoint
        self.refresh_seconds = refresh_seconds
        self.use_gpu = faiss.get_num_gpus() > 0
        self._model_lock = threading.Lock()  # HF fast tokenizers are not safe to call from several threads
        self._refresh_lock = threading.Lock()
        self._checked = 0.0
        self._snapshot = _Snapshot({}, None)
        self._encode = lru_cache(maxsize=QUERY_CACHE_SIZE)(self._encode_text)

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        checkpoint: Path | None = None,
        refresh_seconds: float = 10.0,
        torch_threads: int | None = QUERY_THREADS,
    ) -> Engine:
        """Load the checkpoint, the active indexes and check them against each other.

        ``torch_threads`` is set process-wide once (None leaves torch's setting alone).

        Raises ``DatabaseUnavailable``, ``IndexMissing`` (no index, or no checkpoint yet) and ``IndexMismatch``
        (the active index was built by another checkpoint).
        """
        settings = settings or get_settings()
        url = url or settings.resolved_database_url()
        check_connection(url)
        try:
            path = resolve_checkpoint(settings, checkpoint)
        except FileNotFoundError as exc:
            raise IndexMissing(str(exc)) from exc
        try:  # cheap checks first: loading the model takes seconds
            with session_scope(url) as session:
                builds = search_queries.active_builds(session)
        except (OperationalError, ProgrammingError) as exc:
            raise IndexMissing(
                f"the catalog at {safe_url(url)} has no index tables: run `cmr db upgrade`, then `cmr index`"
            ) from exc
        _check_builds(builds, read_checkpoint_meta(path).hash, path)
        _set_threads(torch_threads)
        model, meta = load_checkpoint(path, pick_device(settings.device))
        engine = cls(url=url, model=model, meta=meta, checkpoint=path, refresh_seconds=refresh_seconds)
        engine.refresh(force=True)
        return engine

    # --- public API -----------------------------------------------------------------------------------------------

    def query(
        self,
        text: str,
        *,
        k: int = 10,
        mode: str = DEFAULT_MODE,
        filters: Filters | None = None,
        negation: bool = False,
    ) -> list[Hit]:
        """The ``k`` studies best matching ``text`` (modes: "video", "report", "both" fused by RRF).

        ``negation=True`` subtracts negated phrases ("no LGE") from the query (see ``search.query_text``).
        """
        _check_k(k)
        vector = self.query_vector(text, negation=negation)
        return self._ranked({kind: vector for kind in self._kinds(mode)}, k, filters, denied_extra=None)

    def similar(
        self, study_uid: str, *, k: int = 10, exclude_same_patient: bool = False, filters: Filters | None = None
    ) -> list[Hit]:
        """The ``k`` studies whose video embedding is nearest to this study's (the study itself excluded)."""
        _check_k(k)
        with self._session() as session:
            found = search_queries.study_key(session, study_uid)
            if found is None:
                raise UnknownStudy(f"no study {study_uid} in the catalog")
            study_id, patient_key = found
            denied = np.array([study_id], dtype=np.int64)
            if exclude_same_patient:
                denied = np.union1d(denied, search_queries.ids_of_patient(session, patient_key))
            video = self._current().indexes["video"]
            if video.contains(np.array([study_id], dtype=np.int64))[0]:
                vector = video.vectors(np.array([study_id]))[0]
            else:
                ids, vectors = search_queries.vectors_of(session, self.meta.hash, "video", [study_id])
                if len(ids) == 0:
                    raise UnknownStudy(f"study {study_uid} has no embedding yet: run `cmr index`")
                vector = vectors[0]
        return self._ranked({"video": vector}, k, filters, denied_extra=denied)

    def scores_for(self, text: str, *, mode: str = DEFAULT_MODE, filters: Filters | None = None) -> list[Hit]:
        """Every allowed study scored against ``text``, best first (cohort building: threshold ``score``).

        For a threshold use a single mode: its score is a cosine; "both" ranks by the fused (rank-based) score.
        """
        vector = self.query_vector(text)
        snapshot = self._current()
        kinds = self._kinds(mode, snapshot)
        allowed = snapshot.table.allowed(filters or Filters())
        results = {}
        for kind in kinds:
            index = snapshot.indexes[kind]
            ids = allowed[index.contains(allowed)]
            scores = index.vectors(ids) @ vector if len(ids) else np.zeros(0, np.float32)
            order = np.lexsort((ids, -scores))
            results[kind] = SearchResult(ids[order], scores[order])
        return self._join(results, k=None)[0]

    def query_vector(self, text: str, *, negation: bool = False) -> np.ndarray:
        """The L2-normalised query embedding (cached per normalised text); raises ``BadQuery``."""
        cleaned = normalise_query(text)
        if not negation:
            return self._encode(cleaned)
        parsed = split_negation(cleaned)
        if not parsed.negated:
            return self._encode(cleaned)
        negative = np.mean([self._encode(p) for p in parsed.negated], axis=0)
        positive = self._encode(parsed.positive) if parsed.positive else np.zeros_like(negative)
        combined = positive - NEGATION_WEIGHT * negative
        return (combined / max(float(np.linalg.norm(combined)), 1e-12)).astype(np.float32)

    @property
    def indexes(self) -> dict[str, VectorIndex]:
        """The loaded indexes by kind (read-only use: evaluation, status pages)."""
        return dict(self._current().indexes)

    def status(self) -> dict[str, Any]:
        """Checkpoint, device and, per index kind, its build, key, size, date and tuned parameters."""
        snapshot = self._current()
        return {
            "checkpoint_hash": self.meta.hash,
            "checkpoint_path": str(self.checkpoint),
            "database": safe_url(self.url),
            "device": str(self.model.device),
            "faiss_gpu": self.use_gpu,
            "indexes": {
                kind: {
                    "build_id": ix.build_id,
                    "index_key": ix.index_key,
                    "n_vectors": ix.size,
                    "dim": ix.dim,
                    "built_at": ix.created_at,
                    "checkpoint_hash": ix.checkpoint_hash,
                    "params": ix.params,
                    "path": ix.path,
                }
                for kind, ix in snapshot.indexes.items()
            },
        }

    def refresh(self, *, force: bool = False) -> None:
        """Load the active builds when they differ from the loaded ones; raise when they do not fit the model."""
        with self._refresh_lock:
            if not force and time.monotonic() - self._checked < self.refresh_seconds:
                return
            with self._session() as session:
                builds = search_queries.active_builds(session)
                table = self._snapshot.table
                if table is None or table.signature != catalog_signature(session):
                    table = FilterTable.load(session)
            _check_builds(builds, self.meta.hash, self.checkpoint)
            loaded = self._snapshot.indexes
            indexes = {}
            for kind, build in builds.items():
                if kind in loaded and loaded[kind].build_id == build.id:
                    indexes[kind] = loaded[kind]
                    continue
                if not Path(build.path).is_file():
                    raise IndexMissing(f"the {kind} index file {build.path} is missing: run `cmr index --rebuild`")
                indexes[kind] = VectorIndex.load(
                    path=build.path,
                    use_gpu=self.use_gpu,
                    kind=kind,
                    build_id=build.id,
                    checkpoint_hash=build.checkpoint_hash,
                    index_key=build.index_key,
                    params=dict(build.params or {}),
                    created_at=str(build.created_at),
                )
                log.info("loaded %s index build %d (%s, %d vectors)", kind, build.id, build.index_key, build.n_vectors)
            self._snapshot = _Snapshot(indexes, table)
            self._checked = time.monotonic()

    # --- internals ----------------------------------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        if time.monotonic() - self._checked >= self.refresh_seconds:
            self.refresh()
        return self._snapshot

    def _kinds(self, mode: str, snapshot: _Snapshot | None = None) -> tuple[str, ...]:
        if mode not in MODES:
            raise BadQuery(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        available = (snapshot or self._current()).indexes
        if mode == "report" and "report" not in available:
            raise IndexMissing("no report index: no report has been embedded yet (run `cmr index`)")
        kinds = ("video", "report") if mode == "both" else (mode,)
        return tuple(k for k in kinds if k in available)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with session_scope(self.url) as session:
                yield session
        except OperationalError as exc:
            raise DatabaseUnavailable(f"cannot reach the catalog database at {safe_url(self.url)}") from exc

    def _encode_text(self, text: str) -> np.ndarray:
        with self._model_lock, torch.inference_mode():
            vector = self.model.encode_texts([text]).float().cpu().numpy()[0]
        vector.setflags(write=False)
        return vector

    def _ranked(
        self, vectors: dict[str, np.ndarray], k: int, filters: Filters | None, denied_extra: np.ndarray | None
    ) -> list[Hit]:
        snapshot = self._current()
        depth = k if len(vectors) == 1 else max(FUSION_DEPTH * k, FUSION_MIN_CANDIDATES)
        if filters is None or filters.is_empty():
            allowed, denied = None, snapshot.table.withdrawn_ids()
        else:
            allowed, denied = snapshot.table.allowed(filters), None
        if denied_extra is not None:
            denied = denied_extra if denied is None else np.union1d(denied, denied_extra)
        missing = np.zeros(0, dtype=np.int64)
        for _ in range(3):  # a study deleted since the build is missing from the join: search again without it
            results = {
                kind: snapshot.indexes[kind].search(vector, depth, allowed=allowed, denied=_union(denied, missing))
                for kind, vector in vectors.items()
            }
            hits, gone = self._join(results, k)
            if len(hits) == k or len(gone) == 0:
                return hits
            missing = np.union1d(missing, gone)
        return hits

    def _join(self, results: dict[str, SearchResult], k: int | None) -> tuple[list[Hit], np.ndarray]:
        """Ranked hits with their catalog rows, and the ids that have no row (deleted or withdrawn since)."""
        if len(results) == 1:
            result = next(iter(results.values()))
            ranked = list(zip(result.ids.tolist(), result.scores.tolist(), strict=True))
        else:
            ranked = reciprocal_rank_fusion({kind: r.ids.tolist() for kind, r in results.items()})
        cosines = {kind: dict(zip(r.ids.tolist(), r.scores.tolist(), strict=True)) for kind, r in results.items()}
        with self._session() as session:
            asked = [i for i, _ in (ranked if k is None else ranked[:k])]
            rows = search_queries.hit_rows(session, asked)
            if len(rows) < len(asked):
                asked = [i for i, _ in ranked]
                rows = search_queries.hit_rows(session, asked)
        hits: list[Hit] = []
        for study_id, score in ranked:
            row = rows.get(study_id)
            if row is None:
                continue
            signal_scores = {kind: c[study_id] for kind, c in cosines.items() if study_id in c}
            hits.append(make_hit(len(hits) + 1, row, score, signal_scores))
            if k is not None and len(hits) == k:
                break
        gone = np.array(sorted(set(asked) - set(rows)), dtype=np.int64)
        return hits, gone


def _check_builds(builds: dict[str, IndexBuild], checkpoint_hash: str, checkpoint: Path) -> None:
    if "video" not in builds:
        raise IndexMissing("no index has been built yet: run `cmr index`")
    for build in builds.values():
        if build.checkpoint_hash != checkpoint_hash:
            raise IndexMismatch(
                f"the active {build.kind} index was built by checkpoint {build.checkpoint_hash}, but the "
                f"checkpoint {checkpoint} is {checkpoint_hash}: run `cmr index` to embed the archive with it"
            )


def _union(a: np.ndarray | None, b: np.ndarray) -> np.ndarray | None:
    if len(b) == 0:
        return a
    return b if a is None else np.union1d(a, b)


def _check_k(k: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadQuery(f"k must be between 1 and {MAX_K}, got {k!r}")


__all__ = ["MODES", "Engine", "SearchError"]
