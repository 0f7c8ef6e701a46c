"""``cmr index``: embed what the checkpoint has not embedded yet (with the driver named), then bring both indexes
up to date (on this machine: the FAISS builds read the vector store)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from indexer.index.builds import KINDS, BuildResult, update_index
from indexer.index.drivers import EmbedOptions, RayOptions, driver_named
from indexer.index.runner import StageTimes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexRun:
    checkpoint_hash: str
    # where the model ran: "cpu", "cuda", "ray (2 CPU actors)"
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
    engine: str = "local",
    ray: RayOptions | None = None,
) -> IndexRun:
    """Embed pending studies and reports with ``checkpoint`` (GPU when present), then update the indexes.

    ``engine`` names the driver (``indexer.index.drivers.DRIVERS``: local or ray). A new checkpoint has no stored
    vectors, so everything is re-embedded and the indexes are rebuilt.
    """
    options = EmbedOptions(batch_size=batch_size, workers=workers, device=device, progress=progress,
                           ray=ray or RayOptions())
    embedded = driver_named(engine)(url, checkpoint, KINDS, options)
    builds = tuple(update_index(url, embedded.checkpoint_hash, kind, index_dir, rebuild=rebuild) for kind in KINDS)
    return IndexRun(embedded.checkpoint_hash, embedded.where, embedded.times["video"], embedded.times["report"], builds)
