"""Batch embedding of studies (clips -> video tower) and reports (text -> text tower) into the vector store.

The shape is clip-retrieval's: a **reader** yields batches (a torch DataLoader whose workers decode clip files
while the model runs), a **mapper** turns a batch into L2-normalised float32 vectors, a **writer** stores them
(float16) in ``study_vectors``, one transaction per batch so an interrupted run resumes where it stopped. The
runner times each stage. ``partition(items, index, count)`` splits the work deterministically, so a Ray driver
(one model actor per GPU) can call the same three stage functions on its share.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from catalog import queries, search_queries
from catalog.db import session_scope
from catalog.models import Study
from cmrclip.batch import collate_studies
from cmrclip.clips import load_clip
from cmrclip.model import CMRClip

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def partition(items: Sequence[T], index: int, count: int) -> list[T]:
    """The ``index``-th of ``count`` deterministic shares (``i % count == index``)."""
    if not 0 <= index < count:
        raise ValueError(f"partition {index} out of range for {count} partitions")
    return [item for i, item in enumerate(items) if i % count == index]


# --- reader ---------------------------------------------------------------------------------------------------------


class ClipFiles(Dataset):
    """``(study id, clip path)`` -> ``(study id, clip dict or None when unreadable, reason)``."""

    def __init__(self, items: Sequence[tuple[int, str]]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, np.ndarray] | None, str]:
        study_id, path = self.items[i]
        try:
            return study_id, load_clip(Path(path)), ""
        except Exception as exc:  # recorded against the study by the runner; the batch goes on
            return study_id, None, f"{type(exc).__name__}: {exc}"


@dataclass
class ClipBatch:
    ids: list[int]
    batch: dict[str, torch.Tensor] | None
    # (study id, reason) of clips that could not be read or collated
    failed: list[tuple[int, str]]


def collate_clip_batch(samples: list[tuple[int, dict[str, np.ndarray] | None, str]]) -> ClipBatch:
    """Collate readable clips; a clip that fails (unreadable, bad shape) fails alone, not its batch."""
    ids, clips, failed = [], [], []
    for study_id, clip, reason in samples:
        if clip is None:
            failed.append((study_id, reason))
            continue
        try:
            collate_studies([clip])
        except ValueError as exc:
            failed.append((study_id, str(exc)))
            continue
        ids.append(study_id)
        clips.append(clip)
    return ClipBatch(ids, collate_studies(clips) if clips else None, failed)


def read_clips(items: Sequence[tuple[int, str]], *, batch_size: int, workers: int) -> DataLoader:
    """The reader: batches of decoded clips, decoded by ``workers`` processes while the model runs."""
    return DataLoader(
        ClipFiles(items),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_clip_batch,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
    )


def read_texts(items: Sequence[tuple[int, str]], *, batch_size: int) -> Iterator[tuple[list[int], list[str]]]:
    """The reader for reports: ``(ids, texts)`` batches."""
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        yield [i for i, _ in chunk], [t for _, t in chunk]


# --- mapper ---------------------------------------------------------------------------------------------------------


def _normalise(x: torch.Tensor) -> np.ndarray:
    x = torch.nn.functional.normalize(x.float(), dim=-1)
    return x.cpu().numpy().astype(np.float32)


@torch.inference_mode()
def map_studies(model: CMRClip, batch: dict[str, torch.Tensor]) -> np.ndarray:
    """The mapper for clips: ``[B, D]`` float32, L2-normalised."""
    return _normalise(model.encode_studies(batch))


@torch.inference_mode()
def map_texts(model: CMRClip, texts: list[str]) -> np.ndarray:
    """The mapper for report texts: ``[B, D]`` float32, L2-normalised."""
    return _normalise(model.encode_texts(texts))


# --- writer ---------------------------------------------------------------------------------------------------------


def write_vectors(url: str, checkpoint_hash: str, kind: str, ids: Sequence[int], vectors: np.ndarray) -> None:
    """The writer: one transaction per batch into the durable store."""
    with session_scope(url) as session:
        search_queries.put_vectors(session, checkpoint_hash, kind, ids, vectors)


def record_failures(url: str, failed: list[tuple[int, str]]) -> None:
    if not failed:
        return
    with session_scope(url) as session:
        for study_id, reason in failed:
            uid = session.get(Study, study_id).study_uid
            queries.record_error(session, stage="embed", kind="clip_unreadable", reason=reason, study_uid=uid)


# --- runners --------------------------------------------------------------------------------------------------------


def embed_studies(
    url: str,
    model: CMRClip,
    checkpoint_hash: str,
    *,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    share: tuple[int, int] = (0, 1),
) -> StageTimes:
    """Embed every preprocessed, non-withdrawn study without a video vector of this checkpoint."""
    with session_scope(url) as session:
        items = partition(search_queries.studies_to_embed(session, checkpoint_hash), *share)
    times = StageTimes()
    start = time.perf_counter()
    bar = tqdm(total=len(items), desc="embed studies", unit="study", disable=not progress)
    loader = iter(read_clips(items, batch_size=batch_size, workers=workers))
    threads = torch.get_num_threads()
    if model.device.type == "cpu" and workers > 0:
        # leave the decoding workers their cores: on 2 cores a 2-thread model beside a decoding worker ran at
        # 2.6-3.0x its bare time per study, a 1-thread one at 1.8x (bench/index_ray.py --studies 480 --workers 1)
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        for chunk in _timed(loader, times):
            record_failures(url, chunk.failed)
            times.failed.extend(i for i, _ in chunk.failed)
            if chunk.batch is not None:
                t1 = time.perf_counter()
                vectors = map_studies(model, chunk.batch)
                t2 = time.perf_counter()
                write_vectors(url, checkpoint_hash, "video", chunk.ids, vectors)
                times.map += t2 - t1
                times.write += time.perf_counter() - t2
                times.done += len(chunk.ids)
            bar.update(len(chunk.ids) + len(chunk.failed))
    finally:
        torch.set_num_threads(threads)
        bar.close()
    times.wall = time.perf_counter() - start
    _log_times("studies", times)
    return times


def _timed(loader: Iterator[ClipBatch], times: StageTimes) -> Iterator[ClipBatch]:
    """The loader's batches, adding the time spent waiting for each to ``times.read``."""
    while True:
        t0 = time.perf_counter()
        chunk = next(loader, None)
        times.read += time.perf_counter() - t0
        if chunk is None:
            return
        yield chunk


def embed_reports(
    url: str,
    model: CMRClip,
    checkpoint_hash: str,
    *,
    batch_size: int = 64,
    progress: bool = True,
    share: tuple[int, int] = (0, 1),
) -> StageTimes:
    """Embed the text (impression + findings) of every linked report without a report vector of this checkpoint."""
    with session_scope(url) as session:
        items = partition(search_queries.reports_to_embed(session, checkpoint_hash), *share)
    times = StageTimes()
    start = time.perf_counter()
    bar = tqdm(total=len(items), desc="embed reports", unit="report", disable=not progress)
    for ids, texts in read_texts(items, batch_size=batch_size):
        t1 = time.perf_counter()
        vectors = map_texts(model, texts)
        t2 = time.perf_counter()
        write_vectors(url, checkpoint_hash, "report", ids, vectors)
        times.map += t2 - t1
        times.write += time.perf_counter() - t2
        times.done += len(ids)
        bar.update(len(ids))
    bar.close()
    times.wall = time.perf_counter() - start
    _log_times("reports", times)
    return times


def _log_times(what: str, t: StageTimes) -> None:
    log.info(
        "embedded %d %s (%d failed) in %.1f s, %.1f/s; read %.1f s, map %.1f s, write %.1f s",
        t.done, what, len(t.failed), t.wall, t.per_second, t.read, t.map, t.write,
    )
