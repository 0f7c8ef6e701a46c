"""The stages of embedding, in clip-retrieval's shape: reader -> mapper -> writer, over one partition of the work.

- **reader** (per kind): ``(id, source)`` items -> :class:`Batch` es. Clips are decoded by a torch DataLoader whose
  ``workers`` processes decode while the model runs; a clip that cannot be read or collated fails alone, not its
  batch. Report texts pass through.
- **mapper**: a batch -> :class:`Mapped`, ``[B, D]`` float32 vectors, L2-normalised here (stored as float16).
- **writer**: :class:`CatalogWriter` stores a mapped batch in ``study_vectors`` and records its failures, in one
  transaction, so an interrupted run resumes where it stopped.

Pending work is read from the vector store (``pending``), so every run embeds only what is missing, and
``partition(items, p, count)`` (``i % count == p``) splits it deterministically: a failed partition is run again
alone. :mod:`indexer.index.runner` drives the stages; :mod:`indexer.index.drivers` runs the runner on this
machine or on Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from sqlalchemy.orm import Session
from torch.utils.data import DataLoader, Dataset

from catalog.db import session_scope
from catalog.errors import record_error
from catalog.models import Study
from catalog.vectors import put_vectors, reports_to_embed, studies_to_embed
from cmrclip.batch import collate_studies
from cmrclip.clips import load_clip
from cmrclip.model import CMRClip

T = TypeVar("T")

# One item of a reader's input: (study id, clip path or report text).
Item = tuple[int, str]


@dataclass
class Batch:
    """What a reader yields: the inputs of the items it could read, and why the others failed."""

    ids: list[int]
    # collated clips (a dict of tensors) or report texts; None when no item of the batch could be read
    inputs: Any
    # (study id, reason)
    failed: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Mapped:
    """What the mapper yields: one L2-normalised float32 vector per id, and the failures it passes on."""

    ids: list[int]
    vectors: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)

    @staticmethod
    def concat(parts: Sequence[Mapped], dim: int) -> Mapped:
        """One ``Mapped`` of several (a partition's batches, written in one transaction)."""
        vectors = [p.vectors for p in parts if len(p.ids)]
        return Mapped(
            [i for p in parts for i in p.ids],
            np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32),
            [f for p in parts for f in p.failed],
        )


# A reader: (items, batch size, decoding workers) -> batches.
Reader = Callable[[Sequence[Item], int, int], Iterable[Batch]]


def partition(items: Sequence[T], index: int, count: int) -> list[T]:
    """The ``index``-th of ``count`` deterministic shares (``i % count == index``)."""
    if not 0 <= index < count:
        raise ValueError(f"partition {index} out of range for {count} partitions")
    return [item for i, item in enumerate(items) if i % count == index]


# --- readers --------------------------------------------------------------------------------------------------------


class ClipFiles(Dataset):
    """``(study id, clip path)`` -> ``(study id, clip dict or None when unreadable, reason)``."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, np.ndarray] | None, str]:
        study_id, path = self.items[i]
        try:
            return study_id, load_clip(Path(path)), ""
        except Exception as exc:  # recorded against the study by the writer; the batch goes on
            return study_id, None, f"{type(exc).__name__}: {exc}"


def collate_clip_batch(samples: list[tuple[int, dict[str, np.ndarray] | None, str]]) -> Batch:
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
    return Batch(ids, collate_studies(clips) if clips else None, failed)


def read_clips(items: Sequence[Item], batch_size: int, workers: int) -> DataLoader:
    """The reader for studies: batches of decoded clips, decoded by ``workers`` processes while the model runs."""
    return DataLoader(
        ClipFiles(items),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_clip_batch,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
    )


def read_texts(items: Sequence[Item], batch_size: int, workers: int = 0) -> Iterator[Batch]:
    """The reader for reports: batches of texts (nothing to decode, so no workers)."""
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        yield Batch([i for i, _ in chunk], [t for _, t in chunk])


# --- what is pending ------------------------------------------------------------------------------------------------


def report_text(impression: str | None, findings: str | None, text: str | None) -> str:
    """The text of a report that is embedded: impression and findings, else the whole text."""
    parts = [p.strip() for p in (impression, findings) if p and p.strip()]
    return "\n".join(parts) if parts else (text or "").strip()


def pending_reports(session: Session, checkpoint_hash: str) -> list[Item]:
    """``(study id, report text)`` of the reports without a report vector of this checkpoint that have text."""
    out = [(sid, report_text(imp, fin, txt)) for sid, imp, fin, txt in reports_to_embed(session, checkpoint_hash)]
    return [(sid, t) for sid, t in out if t]


# --- the kinds of vectors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of vector: where its pending items come from, how they are read and which tower embeds them."""

    name: str
    pending: Callable[[Session, str], list[Item]]
    read: Reader
    # the model's method that embeds a batch's inputs
    encoder: str
    # the smallest batch worth a model call (texts are cheap: a larger batch costs no more memory that matters)
    min_batch_size: int
    # IngestError kind of an item that could not be read
    error_kind: str
    unit: str
    # whether the reader decodes in worker processes (the model then leaves them their cores)
    decodes: bool


KINDS: dict[str, Kind] = {
    "video": Kind("video", studies_to_embed, read_clips, "encode_studies", 1, "clip_unreadable", "study", True),
    "report": Kind("report", pending_reports, read_texts, "encode_texts", 64, "report_unreadable", "report", False),
}


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown vector kind {name!r}; expected one of {tuple(KINDS)}")
    return KINDS[name]


def pending(url: str, checkpoint_hash: str, kind: str) -> list[Item]:
    """The items of ``kind`` without a vector of ``checkpoint_hash`` (what a run has to do)."""
    with session_scope(url) as session:
        return kind_of(kind).pending(session, checkpoint_hash)


# --- mapper ---------------------------------------------------------------------------------------------------------


class Mapper:
    """The mapper: a batch -> L2-normalised float32 vectors, with the tower ``kind`` names."""

    def __init__(self, model: CMRClip, kind: str) -> None:
        self.model = model
        self.encoder = kind_of(kind).encoder

    @torch.inference_mode()
    def __call__(self, batch: Batch) -> Mapped:
        if not batch.ids:
            return Mapped([], np.zeros((0, self.model.embed_dim), dtype=np.float32), batch.failed)
        x = getattr(self.model, self.encoder)(batch.inputs)
        vectors = torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32)
        return Mapped(batch.ids, vectors, batch.failed)


# --- writer ---------------------------------------------------------------------------------------------------------


class CatalogWriter:
    """The writer: a mapped batch's vectors and failures into the catalog, in one transaction."""

    def __init__(self, url: str, checkpoint_hash: str, kind: str) -> None:
        self.url, self.checkpoint_hash, self.kind = url, checkpoint_hash, kind_of(kind)

    def __call__(self, mapped: Mapped) -> None:
        if not mapped.ids and not mapped.failed:
            return
        with session_scope(self.url) as session:
            if mapped.ids:
                put_vectors(session, self.checkpoint_hash, self.kind.name, mapped.ids, mapped.vectors)
            for study_id, reason in mapped.failed:  # recorded once: a re-run records nothing twice
                uid = session.get(Study, study_id).study_uid
                record_error(session, stage="embed", kind=self.kind.error_kind, reason=reason, study_uid=uid)


class Collector:
    """A writer that keeps what it is given, for a runner whose catalog is elsewhere (a Ray worker)."""

    def __init__(self) -> None:
        self.parts: list[Mapped] = []

    def __call__(self, mapped: Mapped) -> None:
        self.parts.append(mapped)
