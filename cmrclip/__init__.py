"""CMR-CLIP: video and text encoders of cardiac MRI studies in one embedding space.

Model side (what ``indexer`` and ``search`` use): ``load_checkpoint``, ``collate_studies``,
``encode_clip_files``, ``encode_text_list``. Names are imported lazily so that ``cmrclip.records`` and
``cmrclip.splits`` stay cheap to import. The training program is ``cmrclip.train`` and is not exported here.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CMRClip": "cmrclip.model",
    "CheckpointMeta": "cmrclip.checkpoint",
    "load_checkpoint": "cmrclip.checkpoint",
    "read_checkpoint_meta": "cmrclip.checkpoint",
    "save_checkpoint": "cmrclip.checkpoint",
    "collate_studies": "cmrclip.batch",
    "create_model": "cmrclip.factory",
    "list_models": "cmrclip.factory",
    "encode_clip_files": "cmrclip.inference",
    "encode_study_clips": "cmrclip.inference",
    "encode_text_list": "cmrclip.inference",
    "StudyRecord": "cmrclip.records",
    "split_records": "cmrclip.splits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cmrclip' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
