"""PACS fetch throughput against a plain folder ingest of the same phantom archive, measured in one run.

    python -m bench.pacs_bench --studies 8 --seed 3 [--concurrency 4] [--archive DIR] [--deid]

Starts a throwaway Orthanc (Debian packages orthanc + orthanc-dicomweb) on a loopback port, loads the archive
into it, then times: a folder ingest, a DICOMweb ingest (fetch / scan / preprocess), an incremental rerun, and
optionally a de-identified DICOMweb ingest. Prints a table. Run from the repository root (it uses the tests'
Orthanc fixture, tests/indexer/pacs_support.py).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from indexer.pipeline import Ingest, ingest_folder
from migrations.apply import upgrade
from phantom.archive import synthesize
from tests.indexer.pacs_support import OrthancServer, archive_files, make_settings

console = Console(width=130)


def _catalog(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'catalog.sqlite'}"
    upgrade(url)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--archive", type=Path, help="use this phantom archive instead of writing one")
    parser.add_argument("--deid", action="store_true", help="also time a de-identified DICOMweb ingest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="pacs-bench-") as tmp:
        work = Path(tmp)
        archive = args.archive or work / "archive"
        if args.archive is None:
            synthesize(archive, args.studies, seed=args.seed, progress=False)
        files = archive_files(archive / "dicom")
        mb = sum(p.stat().st_size for p in files) / 1e6
        server = OrthancServer(work / "orthanc")
        server.start()
        try:
            t0 = time.perf_counter()
            server.upload(files)
            upload_s = time.perf_counter() - t0
            rows = []

            d = work / "folder"
            t0 = time.perf_counter()
            folder = ingest_folder(_catalog(d), archive / "dicom", d / "clips", progress=False)
            rows.append(("folder ingest", folder.scan.studies_new, mb, {"fetch": 0.0, **folder.seconds},
                         time.perf_counter() - t0))  # fmt: skip

            runs = [("dicomweb ingest", {}), ("dicomweb rerun (nothing new)", {})]
            if args.deid:
                runs.append(("dicomweb de-identified", {"deidentify": True, "deid_secret": "bench"}))
            d = work / "pacs"
            url = _catalog(d)
            for label, extra in runs:
                settings = make_settings(d / "data", pacs_concurrency=args.concurrency, pacs_retries=2, **extra)
                if extra:  # a separate catalog: the same studies under pseudonyms
                    url = _catalog(d / "deid")
                t0 = time.perf_counter()
                job = Ingest.dicomweb(settings, server.dicomweb_url, deidentify=settings.deidentify, db_url=url)
                s = job.run(progress=False)
                rows.append((label, s.staged, s.bytes / 1e6, s.seconds, time.perf_counter() - t0))
        finally:
            server.stop()

    table = Table(title=f"PACS bench: {len(files)} files, {mb:.0f} MB, concurrency {args.concurrency}")
    for col in ("run", "studies", "MB", "fetch s", "studies/s (fetch)", "MB/s (fetch)", "scan s", "preprocess s",
                "total s"):  # fmt: skip
        table.add_column(col, justify="right" if col != "run" else "left")
    for label, n, size, sec, total in rows:
        fetch = sec.get("fetch", 0.0)
        rate = (f"{n / fetch:.2f}", f"{size / fetch:.1f}") if fetch > 0 and n else ("–", "–")
        table.add_row(label, str(n), f"{size:.0f}", f"{fetch:.1f}", *rate, f"{sec.get('scan', 0):.1f}",
                      f"{sec.get('preprocess', 0):.1f}", f"{total:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"(loading the archive into Orthanc took {upload_s:.1f} s)")


if __name__ == "__main__":
    main()
