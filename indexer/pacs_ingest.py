"""Incremental ingest from a PACS over DICOMweb: only new or changed cardiac MR studies are fetched.

Fetched studies are staged as files (``data_dir/pacs/<server-key>/studies/<study>/``), de-identified first when
the settings say so, then scanned and preprocessed like any archive folder. A watermark per server (the newest
StudyDate listed) makes the next run list only what came since; it never moves past a study that failed, so a
rerun picks failures up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from indexer.deid import DeidConfig, Deidentifier
from indexer.dicomweb_source import DicomWebSource
from indexer.pacs_config import PacsConfig
from indexer.staged_ingest import StagedIngest, StagedIngestSummary
from indexer.staging import StageOutcome, StagingArea


def server_key(url: str, *, deidentified: bool) -> str:
    """A folder name for a server: readable host and port, a hash of the whole URL, the staging mode."""
    parts = urlsplit(url)
    host = re.sub(r"[^0-9A-Za-z.-]", "_", f"{parts.hostname or 'pacs'}-{parts.port or ''}".strip("-"))
    digest = hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:8]
    return f"{host}-{digest}" + ("-deid" if deidentified else "")


def ingest_dicomweb(
    url_db: str,
    server_url: str,
    *,
    since: dt.date | None = None,
    settings: Any,
    progress: bool = True,
    reports: Any = None,
    deidentify: bool | None = None,
    on_staged: Callable[[StageOutcome], None] | None = None,
) -> StagedIngestSummary:
    """Fetch what is new or changed on the server since ``since`` (default: the stored watermark) and ingest it.

    ``settings`` is the settings object (``pacs_*``, ``deidentify``, ``deid_*``, ``data_dir``, ``workers``,
    ``pseudonym_salt``); ``deidentify`` overrides its ``deidentify``. ``reports`` is a RIS export to import with
    the studies. ``on_staged`` is called, in this thread, as each study's fetch ends.
    """
    cfg = PacsConfig.from_settings(settings)
    deid_on = getattr(settings, "deidentify", False) if deidentify is None else deidentify
    deid = Deidentifier(DeidConfig.from_settings(settings)) if deid_on else None
    key = server_key(server_url, deidentified=deid is not None)
    job = StagedIngest(
        url_db,
        DicomWebSource(server_url, cfg),
        StagingArea(settings.data_dir / "pacs" / key),
        settings.clip_dir,
        deid=deid,
        watermark_key=f"dicomweb:{key}",
        concurrency=cfg.concurrency,
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
        workers=getattr(settings, "workers", 1),
        salt=getattr(settings, "pseudonym_salt", "cmr-default-salt"),
    )
    return job.run(since=since, reports=reports, progress=progress, on_staged=on_staged)
