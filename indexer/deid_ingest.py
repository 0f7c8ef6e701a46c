"""De-identified ingest of an archive folder: copies are de-identified into ``data_dir/deid/<archive-key>/``
and those are scanned; the original archive is only read."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from indexer.deid import DeidConfig, Deidentifier
from indexer.sources import FolderSource
from indexer.staged_ingest import StagedIngest, StagedIngestSummary
from indexer.staging import StageOutcome, StagingArea


def ingest_folder_deidentified(
    url_db: str,
    root: Path,
    *,
    settings: Any,
    reports: Path | None = None,
    progress: bool = True,
    on_staged: Callable[[StageOutcome], None] | None = None,
) -> StagedIngestSummary:
    """Stage de-identified copies of every new or changed study under ``root``, then scan and preprocess them.

    Raises
    ------
    ValueError
        No de-identification secret is configured.
    """
    deid = Deidentifier(DeidConfig.from_settings(settings))
    root = Path(root).resolve()
    key = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    workers = getattr(settings, "workers", 1)
    job = StagedIngest(
        url_db,
        FolderSource(root),
        StagingArea(settings.data_dir / "deid" / key),
        settings.clip_dir,
        deid=deid,
        concurrency=max(workers, 1),
        retries=1,
        backoff_s=0.1,
        workers=workers,
        salt=getattr(settings, "pseudonym_salt", "cmr-default-salt"),
    )
    return job.run(reports=reports, progress=progress, on_staged=on_staged)
