"""Deterministic patient-level splits: train/val/test ~ 70/10/20, plus a held-out site as ``external``.

A patient's bucket comes from sha256 of its key, so the split is the same on every run and machine (Python's
``hash()`` is salted per process). All studies of a patient land in the same split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cmrclip.train.records import StudyRecord

SPLITS: tuple[str, ...] = ("train", "val", "test", "external")
_FRACTIONS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
_SALT = "cmrclip-split-v1"


def patient_bucket(patient_key: str) -> float:
    """A stable number in [0, 1) for a patient key."""
    digest = hashlib.sha256(f"{_SALT}:{patient_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(record: StudyRecord, holdout_site: str | None = None) -> str:
    if holdout_site is not None and record.site == holdout_site:
        return "external"
    bucket = patient_bucket(record.patient_key)
    edge = 0.0
    for name, fraction in _FRACTIONS:
        edge += fraction
        if bucket < edge:
            return name
    return _FRACTIONS[-1][0]


def split_records(
    records: Sequence[StudyRecord], holdout_site: str | None = None
) -> dict[str, list[StudyRecord]]:
    """Records by split name (every name in ``SPLITS`` is a key, possibly with an empty list)."""
    out: dict[str, list[StudyRecord]] = {name: [] for name in SPLITS}
    for record in records:
        out[split_of(record, holdout_site)].append(record)
    return out
