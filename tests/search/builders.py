"""Test builders for the embedding and search suites: a tiny model, catalog rows, clips, hand-made vectors."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from catalog.db import session_scope
from catalog.models import Report, Series, Study, StudyState
from catalog.vectors import put_vectors
from cmrclip.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE, save_clip
from cmrclip.factory import create_model
from cmrclip.model import CMRClip

TINY = {
    "embed_dim": 32,
    "video": {"width": 16, "num_frames": 4, "cnn": {"channels": [4, 8], "temporal_layers": 1},
              "fusion": {"layers": 0, "heads": 2}},
}
INSTITUTIONS = ("site_a", "site_b", "site_c")
MANUFACTURERS = ("Siemens", "GE", "Philips")


@lru_cache(maxsize=1)
def tiny_checkpoints() -> tuple[Path, Path]:
    """Two checkpoints of the same tiny architecture with different weights (so different hashes)."""
    folder = Path(tempfile.mkdtemp(prefix="cmr-tiny-ckpt-"))
    torch.manual_seed(0)
    model = create_model("cpu-small", **TINY)
    first = folder / "a" / "model.pt"
    save_checkpoint(model, first, "test-v1")
    with torch.no_grad():
        model.logit_scale.add_(0.5)
    second = folder / "b" / "model.pt"
    save_checkpoint(model, second, "test-v1")
    return first, second


@lru_cache(maxsize=2)
def tiny_model(which: int = 0) -> tuple[CMRClip, CheckpointMeta]:
    return load_checkpoint(tiny_checkpoints()[which], "cpu")


@dataclass
class StudySpec:
    uid: str
    age: int = 60
    sex: str = "F"
    institution: str = "site_a"
    manufacturer: str = "Siemens"
    field_strength: float = 1.5
    date: dt.date = dt.date(2023, 6, 1)
    views: tuple[str, ...] = ("sax", "4ch")
    patient: str = "p0"
    impression: str | None = None
    findings: str | None = None
    state: str = StudyState.PREPROCESSED
    clip_path: str | None = None


def add_studies(url: str, specs: Sequence[StudySpec]) -> list[int]:
    """Insert studies (with one series per view and an optional report) through the ORM; returns their ids."""
    studies = []
    with session_scope(url) as session:
        for spec in specs:
            study = Study(
                study_uid=spec.uid, accession=f"A{spec.uid}", patient_id=f"PID-{spec.patient}",
                patient_name=f"Doe^{spec.patient}", patient_key=spec.patient, patient_age=spec.age,
                patient_sex=spec.sex, study_date=spec.date, institution=spec.institution,
                manufacturer=spec.manufacturer, scanner_model="Scanner", field_strength=spec.field_strength,
                views=list(spec.views), state=spec.state, clip_path=spec.clip_path, preprocess_version="test-v1",
            )
            study.series = [
                Series(series_uid=f"{spec.uid}.{i}", series_number=i, view=v, frames=[])
                for i, v in enumerate(spec.views)
            ]
            session.add(study)
            if spec.impression is not None:
                session.add(Report(accession=f"A{spec.uid}", study=study, text=spec.impression,
                                   impression=spec.impression, findings=spec.findings))
            studies.append(study)
        session.flush()
        ids = [s.id for s in studies]
    return ids


def write_clip(folder: Path, uid: str, seed: int, views: Sequence[str] = ("sax", "4ch")) -> str:
    rng = np.random.default_rng(seed)
    clips = {}
    for view in views:
        shape = (3, CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE) if view == "sax" else (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE)
        if view == "lge_sax":
            shape = (3, CLIP_SIZE, CLIP_SIZE)
        clips[view] = rng.random(shape, dtype=np.float32)
    path = folder / f"{uid}.npz"
    save_clip(path, clips)
    return str(path)


def unit_vectors(n: int, dim: int, seed: int = 0, clusters: int = 8) -> np.ndarray:
    """Unit vectors with cluster structure."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def store_vectors(url: str, checkpoint_hash: str, kind: str, ids: Sequence[int], vectors: np.ndarray) -> None:
    with session_scope(url) as session:
        put_vectors(session, checkpoint_hash, kind, ids, vectors)


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    """Exact top-k ids (ties by id), computed from the float16-rounded stored vectors."""
    stored = vectors.astype(np.float16).astype(np.float32)
    scores = stored @ query
    order = np.lexsort((ids, -scores))
    return ids[order][:k].tolist()
