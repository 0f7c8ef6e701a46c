"""The training/evaluation input the CLI builds from the catalog (cmrclip never reads the database)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class StudyRecord:
    # catalog id of the study (== its FAISS id)
    study_id: int
    # DICOM Study Instance UID; the key of ground truth and of the clip cache
    study_uid: str
    # npz per cmrclip/clips.py; may not exist (the study is then skipped with a warning)
    clip_path: Path
    # report impression; None = no report (not trained on)
    caption: str | None
    # pseudonymous patient key, for splitting by patient
    patient_key: str
    # site / institution key, for held-out-site evaluation
    site: str
    # report findings section; None = none. Training draws caption sentences from it (cmrclip.train.captions)
    findings: str | None = None
