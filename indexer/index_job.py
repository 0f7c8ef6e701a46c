"""``cmr index``: embed what the checkpoint has not embedded yet, then bring both indexes up to date."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cmrclip.checkpoint import load_checkpoint
from cmrclip.inference import pick_device
from indexer.embed import StageTimes, embed_reports, embed_studies
from indexer.index_builds import KINDS, BuildResult, update_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexRun:
    checkpoint_hash: str
    device: str
    studies: StageTimes
    reports: StageTimes
    builds: tuple[BuildResult, ...]


def run_index(
    url: str,
    checkpoint: Path,
    index_dir: Path,
    *,
    batch_size: int = 32,
    rebuild: bool = False,
    device: str = "auto",
    workers: int = 2,
    progress: bool = True,
) -> IndexRun:
    """Embed pending studies and reports with ``checkpoint`` (GPU when present), then update the indexes.

    A new checkpoint has no stored vectors, so everything is re-embedded and the indexes are rebuilt.
    """
    dev = pick_device(device)
    model, meta = load_checkpoint(checkpoint, dev)
    studies = embed_studies(url, model, meta.hash, batch_size=batch_size, workers=workers, progress=progress)
    reports = embed_reports(url, model, meta.hash, batch_size=max(batch_size, 64), progress=progress)
    builds = tuple(update_index(url, meta.hash, kind, index_dir, rebuild=rebuild) for kind in KINDS)
    return IndexRun(meta.hash, str(dev), studies, reports, builds)
