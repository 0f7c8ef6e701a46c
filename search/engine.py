"""The query engine: text or a study in, ranked hits joined with catalog rows out.

One ``Engine`` serves concurrent queries. It loads the checkpoint and the active indexes once; per query it
builds only local values (query vector, allow-list, per-call FAISS parameters). The loaded indexes form one
immutable snapshot that ``refresh()`` swaps for a new one when ``cmr index`` has activated another build, so an
incremental add shows up within ``refresh_seconds`` without reopening. Withdrawn studies are excluded at query
time through the catalog, so they vanish at once, before the next build drops them from the index.
"""

from __future__ import annotations

import dataclasses
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

from catalog import builds as catalog_builds
from catalog import facts as catalog_facts
from catalog import studies as catalog_studies
from catalog import vectors as catalog_vectors
from catalog.db import DatabaseUnavailable, check_connection, safe_url, session_scope
from catalog.models import IndexBuild
from catalog.settings import Settings, get_settings
from cmrclip.checkpoint import CheckpointMeta, load_checkpoint, read_checkpoint_meta
from cmrclip.inference import pick_device
from cmrclip.language import FINDINGS
from cmrclip.model import CMRClip
from search.errors import BadQuery, IndexMismatch, IndexMissing, SearchError, UnknownStudy
from search.examples import Examples, prototype, with_text
from search.filter_table import FilterTable, catalog_signature
from search.filters import Filters
from search.fusion import DEFAULT_MODE, MODES, reciprocal_rank_fusion
from search.hits import Hit, make_hit
from search.qa import Discrepancy, discrepancies
from search.query_text import NEGATION_WEIGHT, normalise_query, split_negation
from search.understanding import (
    CANDIDATES,
    FULLTEXT_WEIGHT,
    SHORT,
    TEXT_WEIGHT,
    TEXT_WEIGHT_NO_FREE_TEXT,
    TIE_WEIGHT,
    ImageReading,
    scale,
    score_constraints,
    understand,
    why_text,
)
from search.vector_index import SearchResult, VectorIndex

log = logging.getLogger(__name__)

MAX_K = 1_000
# Candidates taken from each signal before fusing, relative to k.
FUSION_DEPTH = 3
FUSION_MIN_CANDIDATES = 30
QUERY_CACHE_SIZE = 4096
# With examples and constraints: the weight of the examples' similarity after the constraints' evidence (which
# stays first: a contradicted constraint costs ~0.9, the whole similarity range at most this)
EXAMPLE_WEIGHT = 0.3
# Full text: a word is "rare" (worth a signal of its own) when at most this share of reports contain it
FULLTEXT_RARE = 0.05
FULLTEXT_MIN = 10

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
        self._reading_lock = threading.Lock()
        self._reading: tuple[tuple, ImageReading] | None = None
        self._directions: np.ndarray | None = None

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
            path = settings.serving_checkpoint(checkpoint)
        except FileNotFoundError as exc:
            raise IndexMissing(str(exc)) from exc
        try:  # cheap checks first: loading the model takes seconds
            with session_scope(url) as session:
                builds = catalog_builds.active_builds(session)
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
        understood: bool = True,
        among: np.ndarray | None = None,
        hidden_reports: np.ndarray | None = None,
        examples: Examples | None = None,
    ) -> list[Hit]:
        """The ``k`` studies best matching ``text`` (modes: "video", "report", "both" fused by RRF).

        The query is read by ``cmrclip.language`` (``search.understanding``): findings, numbers, diagnoses, LGE
        pattern and territory become constraints checked against each report's facts, else judged by the images'
        calibrated per-finding probabilities; the free text left over ranks by embedding similarity (``mode``'s
        signals) and by full-text matches of report text. ``understood=False`` ranks by embedding alone (the
        behaviour before, kept for comparison). ``negation=True`` subtracts negated phrases ("no LGE") from the
        query vector (see ``search.query_text``). For evaluation only: ``among`` limits the search to these study
        ids, ``hidden_reports`` treats these studies as unreported (no facts, report vector or full text).

        ``examples`` (query by example, ``search.examples``): studies whose embeddings, as Rocchio's prototype,
        stand for or join the text's (``text`` may then be empty); the examples themselves are not returned.
        """
        check_k(k)
        if examples:
            return self._by_example(text, examples, k=k, mode=mode, filters=filters, among=among)
        cleaned = normalise_query(text)
        parsed = understand(cleaned) if understood else None
        snapshot = self._current()
        kinds = self._kinds(mode, snapshot)
        if parsed is not None and (parsed.has_constraints or among is not None):
            return self._constrained(parsed, cleaned, k, kinds, filters, negation, snapshot, among, hidden_reports)
        vector = self.query_vector(cleaned, negation=negation)
        extra = None
        if parsed is not None and parsed.free_text:
            extra = self._fulltext(parsed.free_text, snapshot, filters)
        return self._ranked({kind: vector for kind in kinds}, k, filters, denied_extra=None, fulltext=extra,
                            parsed=parsed)

    def _by_example(self, text: str, examples: Examples, *, k: int, mode: str, filters: Filters | None,
                    among: np.ndarray | None) -> list[Hit]:
        cleaned = normalise_query(text) if text and text.strip() else ""
        if not cleaned and not examples.like:
            raise BadQuery("give a query text or at least one positive example: negative examples alone say "
                           "only what not to find")
        parsed = understand(cleaned) if cleaned else None
        snapshot = self._current()
        kinds = self._kinds(mode, snapshot)
        words = (parsed.free_text if parsed is not None and parsed.has_constraints else cleaned) or ""
        text_vector = self.query_vector(words) if words else None
        vectors = {}
        for kind, (like, unlike) in self._example_vectors(examples, kinds, snapshot).items():
            if len(like) or text_vector is not None:
                vectors[kind] = with_text(prototype(like, unlike), text_vector, unlike)
        if "video" not in vectors and "report" not in vectors:
            raise UnknownStudy("none of the positive examples has an embedding yet: run `cmr index`")
        denied = examples.ids
        if parsed is not None and (parsed.has_constraints or among is not None):
            hits = self._constrained(parsed, cleaned, k, tuple(vectors), filters, False, snapshot, among,
                                     vectors=vectors, denied=denied)
        else:
            fulltext = self._fulltext(parsed.free_text, snapshot, filters) if parsed and parsed.free_text else None
            if among is not None:
                filters_allowed = snapshot.table.allowed(filters or Filters())
                denied = np.union1d(denied, np.setdiff1d(filters_allowed, among))
            hits = self._ranked(vectors, k, filters, denied_extra=denied, fulltext=fulltext, parsed=parsed)
        if parsed is None:  # no words: say how close each is to the examples
            hits = [dataclasses.replace(h, why=f"like the examples {max(h.signal_scores.values()):.2f}")
                    if h.signal_scores else h for h in hits]
        return hits

    def _example_vectors(self, examples: Examples, kinds: tuple[str, ...],
                         snapshot: _Snapshot) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per kind, the embeddings of the positive and negative examples that have one (index first, then the
        vector store); raises ``UnknownStudy`` for a study number not in the catalog."""
        ids = examples.ids
        with self._session() as session:
            rows = catalog_studies.study_rows(session, ids.tolist())
            unknown = [i for i in ids.tolist() if i not in rows]
            if unknown:
                raise UnknownStudy("no study " + ", ".join(f"#{i}" for i in unknown) + " in the catalog")
            out = {}
            for kind in kinds:
                index = snapshot.indexes[kind]
                found = self._embeddings(session, index, ids.tolist())

                def stack(group: tuple[int, ...], found=found, dim=index.dim) -> np.ndarray:
                    rows_ = [found[i] for i in group if i in found]
                    return np.stack(rows_).astype(np.float32) if rows_ else np.zeros((0, dim), np.float32)

                out[kind] = (stack(examples.like), stack(examples.unlike))
        return out

    def _embeddings(self, session: Session, index: VectorIndex, ids: list[int]) -> dict[int, np.ndarray]:
        """The embeddings of these studies in ``index``'s kind: from the loaded index, else from the vector store
        (embedded since the build); a study with neither is left out."""
        asked = np.array(ids, dtype=np.int64)
        inside = index.contains(asked)
        found = dict(zip(asked[inside].tolist(), index.vectors(asked[inside]), strict=True)) if inside.any() else {}
        rest = asked[~inside]
        if len(rest):
            stored_ids, stored = catalog_vectors.vectors_of(session, self.meta.hash, index.kind, rest.tolist())
            found.update(zip(np.asarray(stored_ids).tolist(), stored, strict=True))
        return found

    def understand(self, text: str):
        """How the engine reads a query (``cmrclip.language.ParsedQuery``)."""
        return understand(normalise_query(text))

    def image_reading(self) -> ImageReading:
        """The images' calibrated per-finding probabilities of every indexed study (built once per video build
        and facts version)."""
        return self._image_reading(self._current())

    def image_probabilities(self, study_id: int) -> dict[str, float] | None:
        """The images' calibrated probability of each finding for one study (``FINDINGS`` order); None when the
        study has no video embedding in the active index."""
        reading = self._image_reading(self._current())
        if reading is None:
            return None
        probs, known = reading.of(np.array([study_id], dtype=np.int64))
        return dict(zip(FINDINGS, map(float, probs[0]), strict=True)) if known[0] else None

    def discrepancies(
        self, *, k: int = 20, finding: str | None = None, filters: Filters | None = None
    ) -> list[tuple[Hit, Discrepancy]]:
        """Studies whose images disagree most with their report (``search.qa``), strongest first, as hits whose
        ``score`` is the confidence and ``why`` the disagreement."""
        check_k(k)
        snapshot = self._current()
        reading = self._image_reading(snapshot)
        if reading is None:
            return []
        allowed = snapshot.table.allowed(filters) if filters and not filters.is_empty() else snapshot.table.live_ids
        try:
            found = discrepancies(reading, snapshot.table.facts, allowed, finding=finding, limit=k)
        except ValueError as exc:
            raise BadQuery(str(exc)) from exc
        with self._session() as session:
            rows = catalog_studies.study_rows(session, [d.study_id for d in found])
            facts = catalog_facts.facts_of_studies(session, list(rows))
        out = []
        for d in found:
            if d.study_id in rows:
                hit = make_hit(len(out) + 1, rows[d.study_id], d.confidence, {"images": d.image_probability},
                               why=d.text(), facts=facts.get(d.study_id))
                out.append((hit, d))
        return out

    def similar(
        self, study_uid: str, *, k: int = 10, exclude_same_patient: bool = False, filters: Filters | None = None
    ) -> list[Hit]:
        """The ``k`` studies whose video embedding is nearest to this study's (the study itself excluded)."""
        check_k(k)
        with self._session() as session:
            found = catalog_studies.study_key(session, study_uid)
            if found is None:
                raise UnknownStudy(f"no study {study_uid} in the catalog")
            study_id, patient_key = found
            denied = np.array([study_id], dtype=np.int64)
            if exclude_same_patient:
                denied = np.union1d(denied, catalog_studies.ids_of_patient(session, patient_key))
            found_vectors = self._embeddings(session, self._current().indexes["video"], [study_id])
            if study_id not in found_vectors:
                raise UnknownStudy(f"study {study_uid} has no embedding yet: run `cmr index`")
        return self._ranked({"video": found_vectors[study_id]}, k, filters, denied_extra=denied)

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
                builds = catalog_builds.active_builds(session)
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
        self, vectors: dict[str, np.ndarray], k: int, filters: Filters | None, denied_extra: np.ndarray | None,
        fulltext: dict[int, tuple[float, list[str]]] | None = None, parsed=None,
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
            hits, gone = self._join(results, k, fulltext=fulltext, parsed=parsed)
            if len(hits) == k or len(gone) == 0:
                return hits
            missing = np.union1d(missing, gone)
        return hits

    def _join(
        self, results: dict[str, SearchResult], k: int | None,
        fulltext: dict[int, tuple[float, list[str]]] | None = None, parsed=None,
    ) -> tuple[list[Hit], np.ndarray]:
        """Ranked hits with their catalog rows, and the ids that have no row (deleted or withdrawn since)."""
        rankings = {kind: r.ids.tolist() for kind, r in results.items()}
        if fulltext:
            rankings["fulltext"] = sorted(fulltext, key=lambda i: (-fulltext[i][0], i))
        if len(rankings) == 1:
            result = next(iter(results.values()))
            ranked = list(zip(result.ids.tolist(), result.scores.tolist(), strict=True))
        else:
            ranked = reciprocal_rank_fusion(rankings)
        cosines = {kind: dict(zip(r.ids.tolist(), r.scores.tolist(), strict=True)) for kind, r in results.items()}
        with self._session() as session:
            asked = [i for i, _ in (ranked if k is None else ranked[:k])]
            rows = catalog_studies.study_rows(session, asked)
            if len(rows) < len(asked):
                asked = [i for i, _ in ranked]
                rows = catalog_studies.study_rows(session, asked)
            facts = catalog_facts.facts_of_studies(session, asked[: (k or len(asked)) * 2])
        hits: list[Hit] = []
        for study_id, score in ranked:
            row = rows.get(study_id)
            if row is None:
                continue
            signal_scores = {kind: c[study_id] for kind, c in cosines.items() if study_id in c}
            words: list[str] = []
            if fulltext and study_id in fulltext:
                signal_scores["fulltext"], words = fulltext[study_id]
            text_score = max((v for s_, v in signal_scores.items() if s_ in ("video", "report")), default=None)
            why = why_text(parsed, facts.get(study_id), {}, words, text_score) if parsed is not None else ""
            hits.append(make_hit(len(hits) + 1, row, score, signal_scores, why=why, facts=facts.get(study_id)))
            if k is not None and len(hits) == k:
                break
        gone = np.array(sorted(set(asked) - set(rows)), dtype=np.int64)
        return hits, gone

    # --- understood queries ---------------------------------------------------------------------------------------

    def _fulltext(
        self, free_text: str, snapshot: _Snapshot, filters: Filters | None
    ) -> dict[int, tuple[float, list[str]]]:
        """Studies whose report contains a rare word of ``free_text``: id -> (score in (0, 1], the words).

        A word is rare when at most ``FULLTEXT_RARE`` of the reports (at least ``FULLTEXT_MIN``) contain it; common
        words ("ventricle") would only echo what the embedding already ranks. Per study the score is the number of
        rare words found plus its scaled best database rank, divided by words + 1."""
        words = catalog_facts.fulltext_words([free_text])
        if not words:
            return {}
        n_reports = int(snapshot.table.has_report.sum()) if snapshot.table is not None else 0
        cap = max(FULLTEXT_MIN, int(FULLTEXT_RARE * n_reports))
        found: dict[int, list[tuple[str, float]]] = {}
        with self._session() as session:
            for word in words:
                matches = catalog_facts.fulltext(session, word, limit=cap + 1)
                if not matches or len(matches) > cap:
                    continue
                best = max(r for _, r in matches)
                for study_id, rank in matches:
                    found.setdefault(study_id, []).append((word, rank / best))
        if not found:
            return {}
        ids = np.array(sorted(found), dtype=np.int64)
        allowed = snapshot.table.allowed(filters) if filters and not filters.is_empty() else snapshot.table.live_ids
        ids = ids[np.isin(ids, allowed)]
        n_words = len(words)
        return {int(i): ((len(found[i]) + max(r for _, r in found[i])) / (n_words + 1), [w for w, _ in found[i]])
                for i in ids.tolist()}

    def _image_reading(self, snapshot: _Snapshot) -> ImageReading | None:
        video = snapshot.indexes.get("video")
        if video is None or snapshot.table is None:
            return None
        key = (video.build_id, snapshot.table.facts.signature)
        with self._reading_lock:
            if self._reading is not None and self._reading[0] == key:
                return self._reading[1]
            if self._directions is None:
                from cmrclip.prompts import FINDINGS as PROMPT_FINDINGS
                from cmrclip.prompts import ensemble_embedding, load_prompts

                prompts = load_prompts()["findings"]
                with self._model_lock, torch.inference_mode():
                    self._directions = np.stack([
                        ensemble_embedding(self.model, prompts[f].positive)
                        - ensemble_embedding(self.model, prompts[f].negative)
                        for f in PROMPT_FINDINGS
                    ]).astype(np.float32)
            ids = video.ids
            vectors = video.vectors(ids) if len(ids) else np.zeros((0, video.dim), np.float32)
            reading = ImageReading.build(ids, vectors.astype(np.float32), self._directions, snapshot.table.facts)
            self._reading = (key, reading)
            log.info("image reading: %d studies, calibrated on report facts: %s", len(ids),
                     ", ".join(reading.calibrated) or "none")
            return reading

    def _constrained(self, parsed, cleaned: str, k: int, kinds: tuple[str, ...], filters: Filters | None,
                     negation: bool, snapshot: _Snapshot, among: np.ndarray | None = None,
                     hidden: np.ndarray | None = None, *, vectors: dict[str, np.ndarray] | None = None,
                     denied: np.ndarray | None = None) -> list[Hit]:
        """Rank by the constraints' evidence (report facts, else images), free text and full text.

        ``vectors``: the query vector per kind (query by example), instead of the free text's; ``denied``: studies
        never returned (the examples)."""
        table = snapshot.table
        if filters is None or filters.is_empty():  # FAISS with a short deny-list, not a full allow-list
            allowed, limits = table.live_ids, {"allowed": None, "denied": table.withdrawn_ids()}
        else:
            allowed = table.allowed(filters)
            limits = {"allowed": allowed, "denied": None}
        if among is not None:
            allowed = np.intersect1d(allowed, among)
            limits = {"allowed": allowed, "denied": None}
        if denied is not None and len(denied):
            allowed = np.setdiff1d(allowed, denied)
            if limits["allowed"] is not None:
                limits = {"allowed": allowed, "denied": None}
            else:
                limits = {"allowed": None, "denied": np.union1d(limits["denied"], denied)}
        facts_table = table.facts
        if hidden is not None and len(hidden):
            facts_table = facts_table.without(hidden)
        checks = facts_table.checks(parsed)
        reading = self._image_reading(snapshot)
        scored = score_constraints(checks, facts_table, reading, allowed)
        base = scored.evidence + TIE_WEIGHT * scored.image_mean
        m = min(len(allowed), max(CANDIDATES, 4 * k))
        top = np.argpartition(-base, m - 1)[:m] if 0 < m < len(allowed) else np.arange(len(allowed))
        examples_given = vectors is not None
        if vectors is None:
            text = parsed.free_text or cleaned
            vector = self.query_vector(text, negation=negation and not parsed.free_text)
            vectors = {kind: vector for kind in kinds}
        depth = max(3 * k, FUSION_MIN_CANDIDATES)
        near = [snapshot.indexes[kind].search(vectors[kind], depth, **limits).ids for kind in kinds]
        fulltext = self._fulltext(parsed.free_text, snapshot, filters) if parsed.free_text else {}
        if among is not None or hidden is not None:
            fulltext = {i: v for i, v in fulltext.items() if (among is None or i in set(among.tolist()))
                        and (hidden is None or i not in set(hidden.tolist()))}
        cand = np.unique(np.concatenate([allowed[top], *near, np.array(list(fulltext), dtype=np.int64)]))
        where = np.searchsorted(allowed, cand)
        # text similarity: mean over the mode's signals that hold the study
        cos = np.zeros(len(cand))
        count = np.zeros(len(cand))
        per_kind: dict[str, dict[int, float]] = {}
        for kind in kinds:
            index = snapshot.indexes[kind]
            inside = index.contains(cand)
            if kind == "report" and hidden is not None and len(hidden):
                inside &= ~np.isin(cand, hidden)
            if inside.any():
                values = index.vectors(cand[inside]) @ vectors[kind]
                cos[inside] += values
                count[inside] += 1
                per_kind[kind] = dict(zip(cand[inside].tolist(), values.tolist(), strict=True))
        cos = np.where(count > 0, cos / np.maximum(count, 1), np.nan)
        text_term = scale(np.nan_to_num(cos, nan=np.nanmin(cos) if np.isfinite(cos).any() else 0.0))
        weight = EXAMPLE_WEIGHT if examples_given else TEXT_WEIGHT if parsed.free_text else TEXT_WEIGHT_NO_FREE_TEXT
        full = np.array([fulltext.get(int(i), (0.0, []))[0] for i in cand])
        final = base[where] + weight * text_term + FULLTEXT_WEIGHT * full
        order = np.lexsort((cand, -final))
        ranked = cand[order]
        hits: list[Hit] = []
        for start in range(0, len(ranked), max(2 * k, 20)):
            chunk = ranked[start : start + max(2 * k, 20)].tolist()
            with self._session() as session:
                rows = catalog_studies.study_rows(session, chunk)
                facts = catalog_facts.facts_of_studies(session, list(rows))
            for study_id in chunk:
                row = rows.get(study_id)
                if row is None:
                    continue
                i = int(np.searchsorted(cand, study_id))
                w = int(where[i])
                signal_scores: dict[str, float] = {kind: per_kind[kind][study_id] for kind in per_kind
                                                   if study_id in per_kind[kind]}
                if (scored.outcomes[w] != 0).any():
                    signal_scores["facts"] = float(scored.evidence[w])
                image = {}
                for c, check in enumerate(checks):
                    if check.image is not None and not np.isnan(scored.image[w, c]):
                        finding, wanted = check.image
                        p = float(scored.image[w, c]) if wanted else 1.0 - float(scored.image[w, c])
                        image[SHORT.get(finding, finding)] = p
                if image:
                    signal_scores["images"] = float(scored.image_mean[w])
                words: list[str] = []
                if study_id in fulltext:
                    signal_scores["fulltext"], words = fulltext[study_id]
                text_score = None if np.isnan(cos[i]) else float(cos[i])
                why = why_text(parsed, facts.get(study_id), image, words,
                               text_score if parsed.free_text else None)
                hits.append(make_hit(len(hits) + 1, row, float(final[i]), signal_scores, why=why,
                                     facts=facts.get(study_id)))
                if len(hits) == k:
                    return hits
        return hits


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


def check_k(k: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise BadQuery(f"k must be between 1 and {MAX_K}, got {k!r}")


__all__ = ["MODES", "Engine", "SearchError"]
