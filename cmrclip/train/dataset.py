"""Datasets over ``StudyRecord`` lists: clip files (+ captions) for training, evaluation and batch embedding."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cmrclip.batch import collate_studies
from cmrclip.clips import load_clip
from cmrclip.train.records import StudyRecord

log = logging.getLogger(__name__)


def usable_records(records: Sequence[StudyRecord], require_caption: bool) -> list[StudyRecord]:
    """Records whose clip file exists (and, if asked, that have a caption); logs what it skips."""
    kept, missing, uncaptioned = [], 0, 0
    for record in records:
        if require_caption and not (record.caption and record.caption.strip()):
            uncaptioned += 1
        elif not Path(record.clip_path).is_file():
            missing += 1
            log.warning("no clip file for study %s at %s; skipped", record.study_uid, record.clip_path)
        else:
            kept.append(record)
    if uncaptioned:
        log.info("%d studies without a report impression skipped", uncaptioned)
    if missing:
        log.warning("%d studies skipped because their clip file is missing", missing)
    return kept


class StudyClipDataset(Dataset):
    """Item ``i`` is ``(views, caption)`` of ``records[i]``; clips are kept in memory after the first read.

    The in-memory cache matters on CPU: decompressing the npz files every epoch would cost more than the model.
    A float16 study is about 0.8 MB, so a few hundred studies fit easily.
    """

    def __init__(self, records: Sequence[StudyRecord], cache: bool = True) -> None:
        self.records = list(records)
        self.cache = cache
        self._clips: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def clips(self, index: int) -> dict[str, np.ndarray]:
        if index in self._clips:
            return self._clips[index]
        views = load_clip(self.records[index].clip_path)
        if self.cache:
            self._clips[index] = views
        return views

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], str]:
        return self.clips(index), self.records[index].caption or ""


def collate_pairs(items: Sequence[tuple[dict[str, np.ndarray], str]]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """DataLoader collate for ``StudyClipDataset``: (batch dict, captions)."""
    return collate_studies([views for views, _ in items]), [caption for _, caption in items]
