"""Batch embedding helpers for the indexer, search and evaluation (no training code here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from cmrclip.batch import collate_studies
from cmrclip.clips import load_clip
from cmrclip.model import CMRClip


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(items: Iterable, size: int) -> Iterable[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@torch.inference_mode()
def encode_study_clips(
    model: CMRClip, studies: Iterable[dict[str, np.ndarray]], batch_size: int = 32
) -> np.ndarray:
    """Per-study clip dicts (``clips.load_clip``) -> float32 ``[N, D]`` L2-normalised embeddings."""
    model.eval()
    out = [
        model.encode_studies(collate_studies(chunk)).float().cpu().numpy()
        for chunk in _batches(studies, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.embed_dim), dtype=np.float32)


def encode_clip_files(model: CMRClip, paths: Sequence[Path], batch_size: int = 32) -> np.ndarray:
    """Clip files -> float32 ``[N, D]`` embeddings, in the order of ``paths``; a missing file raises."""
    return encode_study_clips(model, (load_clip(path) for path in paths), batch_size)


@torch.inference_mode()
def encode_text_list(model: CMRClip, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Texts -> float32 ``[N, D]`` L2-normalised embeddings."""
    model.eval()
    out = [model.encode_texts(list(chunk)).float().cpu().numpy() for chunk in _batches(texts, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.embed_dim), dtype=np.float32)
