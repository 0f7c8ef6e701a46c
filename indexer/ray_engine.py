"""``cmr index --engine ray``: the stage functions of :mod:`indexer.embed`, distributed with Ray Data.

The local runner (``embed.embed_studies``) drives reader -> mapper -> writer in one process. Here the same stages
run on a Ray cluster (or a local Ray instance):

- **reader**: one Ray Data map task per partition. Partitions are ``embed.partition(pending, p, count)``
  (``i % count == p``), fixed for the run; the task decodes its clips with ``embed.ClipFiles`` (report texts pass
  through) and yields batches of rows. CPU work, spread over every node's cores.
- **mapper**: ``map_batches`` over an actor pool, ``concurrency`` actors, each holding the model once: one actor per
  GPU (``num_gpus=1``) on a GPU cluster, CPU actors otherwise. The actor collates with
  ``embed.collate_clip_batch`` and embeds with ``embed.map_studies`` / ``embed.map_texts``.
- **writer**: on the driver, the only process that talks to the catalog. Rows are gathered per partition; a
  partition is written with ``embed.write_vectors`` (one transaction) once all of its rows are in. A task that
  raises is retried alone by Ray Data (``max_map_retries``); rows are keyed by study id, so a replayed task
  cannot double a vector. A partition still failing after that is dropped from the pass while the others go on,
  and the driver runs it again in its next pass (up to ``attempts``); a killed job loses only unwritten
  partitions, and the next run skips everything written,
  because pending work is read from the vector store (``studies_to_embed``), exactly as the local runner does.

Workers need the project installed (the same image as the driver) and, on several nodes, the clip cache on a
shared filesystem (``CMR_DATA_DIR``); the checkpoint travels through the object store, the catalog stays with
the driver.
"""

from __future__ import annotations

import logging
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog import search_queries
from catalog.db import session_scope
from indexer.embed import (
    ClipFiles,
    StageTimes,
    collate_clip_batch,
    map_studies,
    map_texts,
    partition,
    record_failures,
    write_vectors,
)
from indexer.index_builds import KINDS, update_index
from indexer.index_job import IndexRun

log = logging.getLogger(__name__)

# Studies per partition the default partition count aims at: small enough that a retried partition is cheap,
# large enough that per-task overhead (~10 ms) is negligible next to decoding (~20 ms per study).
TARGET_PARTITION_SIZE = 256

# One row of the reader's output: (study id, payload, reason). The payload is a decoded clip dict for videos,
# the text for reports, None when the item could not be read (reason says why).
Sample = tuple[int, Any, str]
# A reader: (partition id, its items, batch size) -> batches of samples.
Reader = Callable[[int, Sequence[tuple[int, str]], int], Iterator[list[Sample]]]


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs; every field has a default that fits the cluster it finds."""

    # Ray address: None starts a local instance, "auto" joins the cluster this machine belongs to,
    # "ray://head:10001" connects a remote driver.
    address: str | None = None
    # Partitions of the pending work; None: enough for TARGET_PARTITION_SIZE and 4 per CPU.
    partitions: int | None = None
    # Model actors; None: one per GPU on a GPU cluster, else one per `cpus_per_actor` CPUs minus one for readers.
    concurrency: int | None = None
    # GPUs per model actor; None: 1 when the cluster has GPUs and the device setting allows CUDA, else 0.
    gpus_per_actor: float | None = None
    # CPUs per model actor (torch intra-op threads of a CPU actor).
    cpus_per_actor: float = 1.0
    # Studies (or reports) per model batch.
    batch_size: int = 32
    # Ray Data retries of one failed reader or mapper call; after them its rows are dropped for this pass.
    task_retries: int = 2
    # Driver passes: each one runs the partitions still unwritten; then embed_with_ray raises.
    attempts: int = 2
    # Ray Data progress bars on stderr.
    progress: bool = True
    # Reader stage per kind, replacing read_clip_partition ("video") / read_text_partition ("report"); tests wrap
    # the default to inject faults.
    readers: Mapping[str, Reader] = field(default_factory=dict)


# --- reader -----------------------------------------------------------------------------------------------------------


def read_clip_partition(
    partition_id: int, items: Sequence[tuple[int, str]], batch_size: int = 32
) -> Iterator[list[Sample]]:
    """Decode the clips of one partition with ``embed.ClipFiles``; an unreadable clip is a failed sample."""
    files = ClipFiles(items)
    for start in range(0, len(files), batch_size):
        yield [files[i] for i in range(start, min(start + batch_size, len(files)))]


def read_text_partition(
    partition_id: int, items: Sequence[tuple[int, str]], batch_size: int = 64
) -> Iterator[list[Sample]]:
    """Report texts of one partition, as samples (nothing to decode)."""
    for start in range(0, len(items), batch_size):
        yield [(sid, text, "") for sid, text in items[start : start + batch_size]]


def _read_rows(row: dict[str, Any], *, reader: Reader, batch_size: int) -> Iterator[dict[str, Any]]:
    """Ray Data ``flat_map`` task: one input row is one partition (its items pickled); yields one row per item."""
    partition_id = int(row["partition"])
    for samples in reader(partition_id, pickle.loads(row["items"]), batch_size):
        t0 = time.perf_counter()
        encoded = [(sid, pickle.dumps(payload, protocol=5) if payload is not None else b"", reason)
                   for sid, payload, reason in samples]
        share = (time.perf_counter() - t0) / max(len(samples), 1)
        for sid, payload, reason in encoded:
            yield {"partition": partition_id, "study_id": int(sid), "payload": payload, "reason": reason,
                   "read_s": share}


# --- mapper -----------------------------------------------------------------------------------------------------------


class ModelActor:
    """Ray Data actor: loads the checkpoint once, then embeds batches of reader rows.

    Output rows: partition, study id, vector (float32, zeros for a failed item), reason ("" when embedded).
    """

    def __init__(self, checkpoint: list[Any], kind: str, device: str, threads: int) -> None:
        import ray
        import torch

        from cmrclip.checkpoint import load_checkpoint
        from cmrclip.inference import pick_device

        torch.set_num_threads(max(1, threads))
        # The checkpoint bytes come through the object store (wrapped in a list so Ray does not resolve the ref
        # early): no shared filesystem is needed for the model.
        blob = ray.get(checkpoint[0])
        with tempfile.NamedTemporaryFile(suffix=".pt") as fh:
            fh.write(blob)
            fh.flush()
            self.model, self.meta = load_checkpoint(Path(fh.name), pick_device(device))
        self.kind = kind

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        # A replayed reader task can deliver a study twice; keep one row per study so rows and vectors line up.
        last = {int(sid): n for n, sid in enumerate(batch["study_id"])}
        keep = sorted(last.values())
        ids = [int(batch["study_id"][n]) for n in keep]
        payloads = [pickle.loads(batch["payload"][n]) if len(batch["payload"][n]) else None for n in keep]
        reasons = [str(batch["reason"][n]) for n in keep]
        vectors = np.zeros((len(ids), self.model.embed_dim), dtype=np.float32)
        if self.kind == "video":
            clips = collate_clip_batch(list(zip(ids, payloads, reasons, strict=True)))
            failed = dict(clips.failed)
            if clips.batch is not None:
                position = {sid: n for n, sid in enumerate(ids)}
                vectors[[position[sid] for sid in clips.ids]] = map_studies(self.model, clips.batch)
            reasons = [failed.get(sid, "") for sid in ids]
        else:
            ok = [n for n, (text, reason) in enumerate(zip(payloads, reasons, strict=True)) if text and not reason]
            if ok:
                vectors[ok] = map_texts(self.model, [payloads[n] for n in ok])
            reasons = [reason or ("" if n in ok else "empty report text") for n, reason in enumerate(reasons)]
        return {
            "partition": batch["partition"][keep],
            "study_id": np.array(ids, dtype=np.int64),
            "vector": vectors,
            "reason": np.array(reasons, dtype=object),
            "read_s": batch["read_s"][keep],
            "map_s": np.full(len(ids), (time.perf_counter() - t0) / max(len(ids), 1)),
        }


# --- driver: partitions, writer, retries -----------------------------------------------------------------------------


@dataclass
class _Partition:
    items: list[tuple[int, str]]
    # study id -> (vector, reason); a replayed task overwrites, it never adds
    rows: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)
    written: bool = False

    @property
    def complete(self) -> bool:
        return len(self.rows) >= len(self.items)


def default_partitions(n_items: int, cpus: int) -> int:
    """Partitions of ~``TARGET_PARTITION_SIZE`` items, at least four per CPU (load balance), at most one per item."""
    return max(1, min(n_items, max(math.ceil(n_items / TARGET_PARTITION_SIZE), 4 * cpus)))


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Connect to ``address`` (or start a local instance) unless this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=address, include_dashboard=False, **init_kwargs)


def cluster_plan(options: RayOptions, device: str) -> tuple[int, float, float]:
    """``(actors, gpus per actor, cpus per actor)`` for the cluster Ray reports."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    gpus_per_actor = options.gpus_per_actor
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if gpus > 0 and device != "cpu" else 0.0
    if options.concurrency is not None:
        actors = options.concurrency
    elif gpus_per_actor > 0:
        actors = max(1, int(gpus / gpus_per_actor))
    else:
        # leave at least one CPU to the readers, or the pool starves them
        actors = max(1, int((cpus - 1) / options.cpus_per_actor))
    return actors, gpus_per_actor, options.cpus_per_actor


_CONTEXT_FIELDS = (
    "retried_map_errors", "max_map_retries", "actor_task_retry_on_errors", "max_errored_blocks", "enable_progress_bars"
)


@contextmanager
def _data_context(options: RayOptions) -> Iterator[None]:
    """Ray Data settings for one run.

    A user exception in a map task is retried ``task_retries`` times (that task alone). A block still failing
    after that is dropped instead of failing the dataset (``max_errored_blocks=-1``): its partition stays
    incomplete, is not written, and the driver's next pass runs it again while the other partitions go on.
    """
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in _CONTEXT_FIELDS}
    ctx.retried_map_errors = options.task_retries > 0
    ctx.max_map_retries = options.task_retries
    ctx.actor_task_retry_on_errors = options.task_retries > 0
    ctx.max_errored_blocks = -1
    ctx.enable_progress_bars = options.progress
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)


def _dataset(parts: dict[int, _Partition], kind: str, checkpoint_ref: Any, options: RayOptions, device: str):
    import ray

    actors, gpus_per_actor, cpus_per_actor = cluster_plan(options, device)
    reader = options.readers.get(kind) or (read_clip_partition if kind == "video" else read_text_partition)
    rows = [{"partition": p, "items": pickle.dumps(part.items, protocol=5)} for p, part in parts.items()]
    # One block per partition: a reader task is one partition, retried alone. Readers are tasks, spread over the
    # nodes (Ray Data's default scheduling). As a flat_map feeding a fixed batch size they are not fused into the
    # model actors, which would decode on the actors' few CPUs (test_ray_engine checks the plan).
    return (
        ray.data.from_items(rows, override_num_blocks=len(rows))
        .flat_map(_read_rows, fn_kwargs={"reader": reader, "batch_size": options.batch_size}, num_cpus=1)
        .map_batches(
            ModelActor,
            batch_size=options.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={
                "checkpoint": [checkpoint_ref],
                "kind": kind,
                "device": "cuda" if gpus_per_actor > 0 else "cpu",
                "threads": int(cpus_per_actor),
            },
            num_gpus=gpus_per_actor or None,
            num_cpus=cpus_per_actor,
        )
    )


def _write_partition(url: str, checkpoint_hash: str, kind: str, part: _Partition, times: StageTimes) -> None:
    t0 = time.perf_counter()
    ok = sorted(i for i, (_, reason) in part.rows.items() if not reason)
    failed = sorted((i, reason) for i, (_, reason) in part.rows.items() if reason)
    if ok:
        write_vectors(url, checkpoint_hash, kind, ok, np.stack([part.rows[i][0] for i in ok]))
    if kind == "video":
        record_failures(url, failed)  # idempotent: a re-run records nothing twice
    part.written = True
    part.rows.clear()
    times.done += len(ok)
    times.failed.extend(i for i, _ in failed)
    times.write += time.perf_counter() - t0


def embed_with_ray(
    url: str,
    checkpoint: Path,
    kind: str,
    *,
    options: RayOptions | None = None,
    device: str = "auto",
) -> StageTimes:
    """Embed every pending study (``kind="video"``) or report (``"report"``) of ``checkpoint`` on Ray.

    Pending work is what the vector store lacks, as for the local runner, so a re-run after a kill resumes.
    Raises ``RuntimeError`` naming the partitions still unwritten after ``options.attempts`` passes (the others
    are written).
    """
    import ray

    from cmrclip.checkpoint import read_checkpoint_meta

    if kind not in KINDS:
        raise ValueError(f"unknown vector kind {kind!r}; expected one of {KINDS}")
    options = options or RayOptions()
    checkpoint_hash = read_checkpoint_meta(checkpoint).hash
    with session_scope(url) as session:
        pending = (
            search_queries.studies_to_embed(session, checkpoint_hash)
            if kind == "video"
            else search_queries.reports_to_embed(session, checkpoint_hash)
        )
    times = StageTimes()
    if not pending:
        return times
    start = time.perf_counter()
    ensure_ray(options.address)
    count = options.partitions or default_partitions(len(pending), int(ray.cluster_resources().get("CPU", 1)))
    parts = {p: _Partition(partition(pending, p, count)) for p in range(count)}
    parts = {p: part for p, part in parts.items() if part.items}
    checkpoint_ref = ray.put(Path(checkpoint).read_bytes())
    log.info("embedding %d %s in %d partitions on Ray", len(pending), kind, len(parts))

    with _data_context(options):
        for attempt in range(1, options.attempts + 1):
            todo = {p: part for p, part in parts.items() if not part.written}
            if not todo:
                break
            for part in todo.values():
                part.rows.clear()
            try:
                for batch in _dataset(todo, kind, checkpoint_ref, options, device).iter_batches(
                    batch_size=None, batch_format="numpy"
                ):
                    touched = set()
                    for p, sid, vector, reason, read_s, map_s in zip(
                        batch["partition"], batch["study_id"], batch["vector"], batch["reason"],
                        batch["read_s"], batch["map_s"], strict=True,
                    ):
                        todo[int(p)].rows[int(sid)] = (np.asarray(vector, dtype=np.float32), str(reason))
                        times.read += float(read_s)
                        times.map += float(map_s)
                        touched.add(int(p))
                    for p in touched:
                        if todo[p].complete and not todo[p].written:
                            _write_partition(url, checkpoint_hash, kind, todo[p], times)
            except Exception as exc:  # the dataset failed after its own retries: re-run what is unwritten
                left = sorted(p for p, part in parts.items() if not part.written)
                log.warning("Ray pass %d/%d failed (%s); unwritten: %s", attempt, options.attempts, exc, left)
    left = sorted(p for p, part in parts.items() if not part.written)
    times.wall = time.perf_counter() - start
    log.info(
        "Ray: embedded %d %s (%d failed) in %.1f s, %.1f/s; read %.1f s, map %.1f s (worker seconds), write %.1f s",
        times.done, kind, len(times.failed), times.wall, times.per_second, times.read, times.map, times.write,
    )
    if left:
        raise RuntimeError(
            f"{len(left)} of {len(parts)} partitions could not be embedded ({left}); the rest are stored. "
            "Run `cmr index --engine ray` again to resume."
        )
    return times


def run_index_ray(
    url: str,
    checkpoint: Path,
    index_dir: Path,
    *,
    options: RayOptions | None = None,
    rebuild: bool = False,
    device: str = "auto",
) -> IndexRun:
    """``indexer.index_job.run_index`` with the embedding on Ray; the FAISS builds stay on the driver."""
    import ray

    from cmrclip.checkpoint import read_checkpoint_meta

    options = options or RayOptions()
    meta = read_checkpoint_meta(checkpoint)
    studies = embed_with_ray(url, checkpoint, "video", options=options, device=device)
    reports = embed_with_ray(url, checkpoint, "report", options=options, device=device)
    builds = tuple(update_index(url, meta.hash, kind, index_dir, rebuild=rebuild) for kind in KINDS)
    where = "ray"
    if ray.is_initialized():
        actors, gpus, _ = cluster_plan(options, device)
        where = f"ray ({actors} {'GPU' if gpus else 'CPU'} actors)"
    return IndexRun(meta.hash, where, studies, reports, builds)
