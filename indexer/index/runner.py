"""The one runner: reader -> mapper -> writer over one partition of the pending items, timing each stage.

Both drivers (:mod:`indexer.index.drivers`) call :func:`run_partition`: the sequential one on this machine with the
catalog writer, the Ray one inside a model actor with a collecting writer whose output the driver writes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from cmrclip.model import CMRClip
from indexer.index.stages import Batch, Item, Mapped, Mapper, Reader, kind_of

log = logging.getLogger(__name__)


@dataclass
class StageTimes:
    """Seconds spent per stage, and how many items went through."""

    read: float = 0.0
    map: float = 0.0
    write: float = 0.0
    done: int = 0
    failed: list[int] = field(default_factory=list)
    wall: float = 0.0

    @property
    def per_second(self) -> float:
        return self.done / self.wall if self.wall > 0 else 0.0

    def add(self, other: StageTimes) -> None:
        """Add the stage seconds and counts of ``other`` (a partition run elsewhere); ``wall`` stays this run's."""
        self.read += other.read
        self.map += other.map
        self.write += other.write
        self.done += other.done
        self.failed.extend(other.failed)

    def log(self, what: str, where: str = "") -> None:
        t = self
        log.info(
            "%sembedded %d %s (%d failed) in %.1f s, %.1f/s; read %.1f s, map %.1f s, write %.1f s",
            where, t.done, what, len(t.failed), t.wall, t.per_second, t.read, t.map, t.write,
        )


def run(
    batches: Iterable[Batch],
    mapper: Callable[[Batch], Mapped],
    writer: Callable[[Mapped], None],
    *,
    on_batch: Callable[[int], object] = lambda n: None,
) -> StageTimes:
    """The loop: each batch the reader yields is mapped and written; the wait for each stage is timed."""
    times = StageTimes()
    start = time.perf_counter()
    for batch in _timed(iter(batches), times):
        t1 = time.perf_counter()
        mapped = mapper(batch)
        t2 = time.perf_counter()
        writer(mapped)
        times.map += t2 - t1
        times.write += time.perf_counter() - t2
        times.done += len(mapped.ids)
        times.failed.extend(i for i, _ in mapped.failed)
        on_batch(len(mapped.ids) + len(mapped.failed))
    times.wall = time.perf_counter() - start
    return times


def _timed(batches: Iterator[Batch], times: StageTimes) -> Iterator[Batch]:
    """The reader's batches, adding the time spent waiting for each to ``times.read``."""
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        times.read += time.perf_counter() - t0
        if batch is None:
            return
        yield batch


@contextmanager
def cores_for_readers(model: CMRClip, workers: int) -> Iterator[None]:
    """Leave the decoding workers their cores: a CPU model runs on the cores they leave; restored after."""
    threads = torch.get_num_threads()
    if model.device.type == "cpu" and workers > 0:
        # on 2 cores a 2-thread model beside a decoding worker ran at 2.6-3.0x its bare time per study, a 1-thread
        # one at 1.8x (bench/index_ray.py --studies 480 --workers 1)
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_partition(
    model: CMRClip,
    kind: str,
    items: Sequence[Item],
    writer: Callable[[Mapped], None],
    *,
    batch_size: int,
    workers: int = 0,
    progress: bool = False,
    reader: Reader | None = None,
) -> StageTimes:
    """Embed ``items`` of ``kind`` with ``model`` into ``writer``: the kind's reader (or ``reader``), the mapper."""
    k = kind_of(kind)
    read = reader or k.read
    workers = workers if k.decodes else 0
    batches = read(items, max(batch_size, k.min_batch_size), workers)
    bar = tqdm(total=len(items), desc=f"embed {kind}", unit=k.unit, disable=not progress)
    try:
        with cores_for_readers(model, workers):
            return run(batches, Mapper(model, kind), writer, on_batch=bar.update)
    finally:
        bar.close()
