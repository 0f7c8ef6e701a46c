"""Drivers: who runs the one runner (:func:`indexer.index.runner.run_partition`) over which partitions.

Both have one signature, ``driver(url, checkpoint, kinds, options) -> EmbedRun``, and are chosen by name from
``DRIVERS`` (clip-retrieval's distributors):

- ``local``: this process, one partition holding all the pending work, the catalog writer after every batch
  (one transaction per batch, so an interrupted run resumes where it stopped). The model runs on the GPU when
  present; clip decoding runs in ``workers`` DataLoader processes.
- ``ray``: Ray Data ``map_batches`` over an actor pool, ``concurrency`` actors each holding the model once (one
  per GPU on a GPU cluster, CPU actors otherwise). The pending work is split into partitions
  (``i % count == p``, fixed for the run); an actor runs the runner over one partition at a time (decoding its
  clips itself, with ``RayOptions.workers`` DataLoader processes) into a collecting writer and hands the
  partition back; the driver, the only process that talks to the catalog, writes it in one transaction. A task
  that raises is retried alone by Ray Data (``task_retries``); a partition still failing after that is dropped
  from the pass while the others go on, and the driver runs it again in its next pass (up to ``attempts``). A
  killed job loses only unwritten partitions, and the next run skips everything written, because pending work
  is read from the vector store, exactly as the local driver does.

Ray workers need the project installed (the same image as the driver) and, on several nodes, the clip cache on a
shared filesystem (``CMR_DATA_DIR``); the checkpoint travels through the object store.
"""

from __future__ import annotations

import importlib.util
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

from cmrclip.checkpoint import load_checkpoint, read_checkpoint_meta
from cmrclip.inference import pick_device
from cmrclip.model import CMRClip
from indexer.index.runner import StageTimes, run_partition
from indexer.index.stages import CatalogWriter, Collector, Mapped, Reader, partition, pending

log = logging.getLogger(__name__)

# Studies per partition the default partition count aims at: small enough that a retried partition is cheap,
# large enough that per-task overhead (~10 ms) is negligible next to decoding (~20 ms per study).
TARGET_PARTITION_SIZE = 256


@dataclass(frozen=True)
class RayOptions:
    """How the Ray driver runs; every field has a default that fits the cluster it finds."""

    # Ray address: None starts a local instance, "auto" joins the cluster this machine belongs to,
    # "ray://head:10001" connects a remote driver.
    address: str | None = None
    # Partitions of the pending work; None: enough for TARGET_PARTITION_SIZE and 4 per CPU.
    partitions: int | None = None
    # Model actors; None: one per GPU on a GPU cluster, else as many as the CPUs hold.
    concurrency: int | None = None
    # GPUs per model actor; None: 1 when the cluster has GPUs and the device setting allows CUDA, else 0.
    gpus_per_actor: float | None = None
    # CPUs per model actor for the model (torch intra-op threads of a CPU actor).
    cpus_per_actor: float = 1.0
    # Clip-decoding processes per actor (DataLoader workers), each reserving one more CPU; 0 decodes in the actor.
    workers: int = 0
    # Ray Data retries of one failed partition; after them it is dropped for this pass.
    task_retries: int = 2
    # Driver passes: each one runs the partitions still unwritten; then the driver raises.
    attempts: int = 2
    # Reader per kind, replacing the kind's own; tests wrap the default to inject faults.
    readers: Mapping[str, Reader] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedOptions:
    """What both drivers take."""

    # Items per model batch (report texts: at least 64).
    batch_size: int = 32
    # Clip-decoding DataLoader processes of the local driver.
    workers: int = 2
    # "auto" (CUDA when present), "cpu" or "cuda".
    device: str = "auto"
    # Progress bars (tqdm locally, Ray Data's on Ray).
    progress: bool = True
    ray: RayOptions = field(default_factory=RayOptions)


@dataclass(frozen=True)
class EmbedRun:
    checkpoint_hash: str
    # where the model ran: "cpu", "cuda", "ray (2 CPU actors)"
    where: str
    # per kind
    times: dict[str, StageTimes]


class EmbedError(RuntimeError):
    """A driver could not embed everything; the message says what to do."""


Driver = Callable[[str, Path, Sequence[str], EmbedOptions], EmbedRun]


# --- local ------------------------------------------------------------------------------------------------------------


def embed_locally(url: str, checkpoint: Path, kinds: Sequence[str], options: EmbedOptions) -> EmbedRun:
    """Embed the pending items of ``kinds`` in this process (GPU when present), the model loaded once."""
    device = pick_device(options.device)
    model, meta = load_checkpoint(checkpoint, device)
    times = {kind: embed_pending(url, model, meta.hash, kind, options) for kind in kinds}
    return EmbedRun(meta.hash, str(device), times)


def embed_pending(
    url: str, model: CMRClip, checkpoint_hash: str, kind: str, options: EmbedOptions | None = None
) -> StageTimes:
    """Embed every item of ``kind`` without a vector of ``checkpoint_hash`` with a loaded ``model``."""
    options = options or EmbedOptions()
    items = pending(url, checkpoint_hash, kind)
    times = run_partition(
        model, kind, items, CatalogWriter(url, checkpoint_hash, kind),
        batch_size=options.batch_size, workers=options.workers, progress=options.progress,
    )
    times.log(kind)
    return times


# --- Ray --------------------------------------------------------------------------------------------------------------


def embed_with_ray(url: str, checkpoint: Path, kinds: Sequence[str], options: EmbedOptions) -> EmbedRun:
    """Embed the pending items of ``kinds`` on Ray; the catalog stays with this process.

    Raises ``EmbedError`` naming the partitions still unwritten after ``options.ray.attempts`` passes (the others
    are written).
    """
    if importlib.util.find_spec("ray") is None:
        raise EmbedError("--engine ray needs Ray: pip install 'cmr-retrieval[ray]'")
    import ray

    checkpoint_hash = read_checkpoint_meta(checkpoint).hash
    ensure_ray(options.ray.address)
    checkpoint_ref = ray.put(Path(checkpoint).read_bytes())
    times = {kind: _embed_kind(url, checkpoint_hash, checkpoint_ref, kind, options) for kind in kinds}
    actors, gpus, _ = cluster_plan(options.ray, options.device)
    return EmbedRun(checkpoint_hash, f"ray ({actors} {'GPU' if gpus else 'CPU'} actors)", times)


def _embed_kind(url: str, checkpoint_hash: str, checkpoint_ref: Any, kind: str, options: EmbedOptions) -> StageTimes:
    """One kind on Ray: partitions out, written partitions back, passes until all are written or attempts run out."""
    import ray

    items = pending(url, checkpoint_hash, kind)
    times = StageTimes()
    if not items:
        return times
    start = time.perf_counter()
    count = options.ray.partitions or default_partitions(len(items), int(ray.cluster_resources().get("CPU", 1)))
    parts = {p: share for p in range(count) if (share := partition(items, p, count))}
    log.info("embedding %d %s in %d partitions on Ray", len(items), kind, len(parts))
    writer = CatalogWriter(url, checkpoint_hash, kind)
    written: set[int] = set()
    with _data_context(options):
        for attempt in range(1, options.ray.attempts + 1):
            todo = {p: share for p, share in parts.items() if p not in written}
            if not todo:
                break
            try:
                for p, mapped, part_times in _run_partitions(todo, kind, checkpoint_ref, options):
                    if p in written:  # a replayed task: its partition is stored already
                        continue
                    t0 = time.perf_counter()
                    writer(mapped)
                    part_times.write += time.perf_counter() - t0
                    times.add(part_times)
                    written.add(p)
            except Exception as exc:  # the dataset failed after its own retries: re-run what is unwritten
                left = sorted(set(parts) - written)
                log.warning("Ray pass %d/%d failed (%s); unwritten: %s", attempt, options.ray.attempts, exc, left)
    times.wall = time.perf_counter() - start
    times.log(kind, "Ray: ")  # read and map are worker seconds
    left = sorted(set(parts) - written)
    if left:
        raise EmbedError(
            f"{len(left)} of {len(parts)} partitions could not be embedded ({left}); the rest are stored. "
            "Run `cmr index --engine ray` again to resume."
        )
    return times


def _run_partitions(
    todo: dict[int, list], kind: str, checkpoint_ref: Any, options: EmbedOptions
) -> Iterator[tuple[int, Mapped, StageTimes]]:
    """``(partition, its vectors, its stage times)`` as the actors finish them; failed partitions are left out."""
    for batch in _dataset(todo, kind, checkpoint_ref, options).iter_batches(batch_size=None, batch_format="numpy"):
        for p, result in zip(batch["partition"], batch["result"], strict=True):
            mapped, part_times = pickle.loads(result)
            yield int(p), mapped, part_times


class PartitionActor:
    """Ray Data actor: loads the checkpoint once, then runs the runner over each partition it is given.

    Output rows: the partition and its result, pickled ``(Mapped, StageTimes)``.
    """

    def __init__(
        self, checkpoint: list[Any], kind: str, device: str, threads: int, batch_size: int, workers: int,
        reader: Reader | None,
    ) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        # The checkpoint bytes come through the object store (wrapped in a list so Ray does not resolve the ref
        # early): no shared filesystem is needed for the model.
        blob = ray.get(checkpoint[0])
        with tempfile.NamedTemporaryFile(suffix=".pt") as fh:
            fh.write(blob)
            fh.flush()
            self.model, _ = load_checkpoint(Path(fh.name), pick_device(device))
        self.kind, self.batch_size, self.workers, self.reader = kind, batch_size, workers, reader

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for items in batch["items"]:
            collected = Collector()
            times = run_partition(
                self.model, self.kind, pickle.loads(items), collected,
                batch_size=self.batch_size, workers=self.workers, reader=self.reader,
            )
            mapped = Mapped.concat(collected.parts, self.model.embed_dim)
            results.append(pickle.dumps((mapped, times), protocol=5))
        return {"partition": batch["partition"], "result": np.array(results, dtype=object)}


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
    """``(actors, gpus per actor, cpus per actor)`` for the cluster Ray reports (an actor's CPUs include its
    decoding workers')."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    gpus_per_actor = options.gpus_per_actor
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if gpus > 0 and device != "cpu" else 0.0
    cpus_per_actor = options.cpus_per_actor + options.workers
    if options.concurrency is not None:
        actors = options.concurrency
    elif gpus_per_actor > 0:
        actors = max(1, int(gpus / gpus_per_actor))
    else:
        actors = max(1, int(cpus / cpus_per_actor))
    return actors, gpus_per_actor, cpus_per_actor


_CONTEXT_FIELDS = (
    "retried_map_errors", "max_map_retries", "actor_task_retry_on_errors", "max_errored_blocks", "enable_progress_bars"
)


@contextmanager
def _data_context(options: EmbedOptions) -> Iterator[None]:
    """Ray Data settings for one run.

    A user exception in a map task is retried ``task_retries`` times (that task alone). A block still failing
    after that is dropped instead of failing the dataset (``max_errored_blocks=-1``): its partition is not
    written, and the driver's next pass runs it again while the other partitions go on.
    """
    from ray.data import DataContext

    ctx = DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in _CONTEXT_FIELDS}
    retries = options.ray.task_retries
    ctx.retried_map_errors = retries > 0
    ctx.max_map_retries = retries
    ctx.actor_task_retry_on_errors = retries > 0
    ctx.max_errored_blocks = -1
    ctx.enable_progress_bars = options.progress
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)


def _dataset(parts: dict[int, list], kind: str, checkpoint_ref: Any, options: EmbedOptions):
    """One row and one block per partition (a task is one partition, retried alone), mapped by the actor pool."""
    import ray

    actors, gpus_per_actor, cpus_per_actor = cluster_plan(options.ray, options.device)
    rows = [{"partition": p, "items": pickle.dumps(items, protocol=5)} for p, items in parts.items()]
    return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        PartitionActor,
        batch_size=1,
        batch_format="numpy",
        # no actor without a partition to run: each one loads the model
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(rows))),
        fn_constructor_kwargs={
            "checkpoint": [checkpoint_ref],
            "kind": kind,
            "device": "cuda" if gpus_per_actor > 0 else "cpu",
            "threads": int(options.ray.cpus_per_actor),
            "batch_size": options.batch_size,
            "workers": options.ray.workers,
            "reader": options.ray.readers.get(kind),
        },
        num_gpus=gpus_per_actor or None,
        num_cpus=cpus_per_actor,
    )


DRIVERS: dict[str, Driver] = {"local": embed_locally, "ray": embed_with_ray}


def driver_named(name: str) -> Driver:
    if name not in DRIVERS:
        raise ValueError(f"unknown engine {name!r}; use one of {', '.join(DRIVERS)}")
    return DRIVERS[name]
