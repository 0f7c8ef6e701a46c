"""Stage studies from a source as files in a local folder, one study at a time and atomically.

Layout of a staging area::

    studies/<study>/<series>/<instance>.dcm   what the scan reads (names are the staged, maybe pseudonymous, UIDs)
    manifests/<study>.json                     version of the source study, instance count, scanned yet or not
    tmp/                                       studies being written; a crashed run's leftovers are removed

A study is written to ``tmp`` and renamed into ``studies`` only when every instance arrived, so a fetch that
breaks off mid-study leaves nothing behind. A study keeps failing after its retries → an outcome with the
failure; the other studies go on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset
from tqdm import tqdm

from indexer.sources.folder import Failure, FileProblem, FilteredOut, StudyListing, StudySource

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name) or "_"


class StagingArea:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.studies = self.root / "studies"
        self.manifests = self.root / "manifests"
        self.tmp = self.root / "tmp"

    def prepare(self) -> None:
        """Create the folders and drop what an interrupted run left half-written."""
        for d in (self.studies, self.manifests):
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)

    def manifest(self, name: str) -> dict | None:
        path = self.manifests / f"{_safe(name)}.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_current(self, name: str, version: str) -> bool:
        m = self.manifest(name)
        return m is not None and m.get("version") == version and (m.get("filtered") or (self.studies / name).is_dir())

    def write_manifest(self, name: str, manifest: dict) -> None:
        path = self.manifests / f"{_safe(name)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, sort_keys=True))
        tmp.replace(path)

    def new_tmp(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.tmp))

    def commit(self, name: str, staged: Path, manifest: dict) -> None:
        """Put a completely written study in place of its older copy, then record its manifest."""
        final = self.studies / _safe(name)
        old = None
        if final.exists():
            old = self.new_tmp() / "old"
            final.rename(old)
        staged.rename(final)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
        self.write_manifest(name, {**manifest, "scanned": False})

    def pending_scan(self) -> list[str]:
        """Studies staged but not yet scanned into the catalog (also after a crash between the two)."""
        return [
            p.stem for p in sorted(self.manifests.glob("*.json")) if not json.loads(p.read_text()).get("scanned", True)
        ]

    def mark_scanned(self, names: list[str]) -> None:
        for name in names:
            m = self.manifest(name)
            if m is not None:
                self.write_manifest(name, {**m, "scanned": True})


@dataclass
class StageOutcome:
    study: StudyListing
    name: str  # the staged study's name (pseudonymous UID when de-identifying)
    status: str  # staged | filtered | failed
    failure: Failure | None = None
    instances: int = 0
    bytes: int = 0
    skipped: int = 0  # instances that could not be staged (broken files)
    problems: list[FileProblem] = field(default_factory=list)  # which, and why
    attempts: int = 0
    seconds: float = 0.0


@dataclass
class Stager:
    """Fetch studies from a source into a staging area, with retries and bounded concurrency."""

    source: StudySource
    area: StagingArea
    name_of: Callable[[str], str]  # source study UID → staged name
    transform: Callable[[Dataset], Dataset] | None = None  # e.g. de-identification, applied before writing
    version_suffix: str = ""  # changes when the transform changes, so staged copies are redone
    concurrency: int = 4
    retries: int = 3
    backoff_s: float = 1.0
    problem_ref: Callable[[str], str | None] = lambda path: path or None  # a skipped file's name in the errors

    def stage(
        self,
        studies: list[StudyListing],
        *,
        progress: bool = False,
        on_staged: Callable[[StageOutcome], None] | None = None,
    ) -> list[StageOutcome]:
        """Stage every study; outcomes arrive (and ``on_staged`` is called) in the calling thread."""
        outcomes = []
        bar = tqdm(total=len(studies), desc="fetch", unit="study", disable=not progress)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="stage") as pool:
            futures = [pool.submit(self._stage_one, s) for s in studies]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                bar.update()
                if on_staged is not None:
                    on_staged(outcome)
        bar.close()
        return outcomes

    def _stage_one(self, study: StudyListing) -> StageOutcome:
        name = self.name_of(study.study_uid)
        version = study.version + self.version_suffix
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            staged = self.area.new_tmp()
            try:
                n, size, problems = self._write(self.source.iter_instances(study), staged)
                self.area.commit(name, staged, {
                    "version": version, "instances": n, "skipped": len(problems),
                    "problems": [[p.path, p.kind, p.reason] for p in problems],
                })  # fmt: skip
                log.info("staged study %s: %d instances, %.1f MB", name, n, size / 1e6)
                return StageOutcome(study, name, "staged", None, n, size, len(problems), problems, attempt,
                                    time.perf_counter() - t0)  # fmt: skip
            except FilteredOut:
                shutil.rmtree(staged, ignore_errors=True)
                self.area.write_manifest(name, {"version": version, "filtered": True})
                return StageOutcome(study, name, "filtered", attempts=attempt, seconds=time.perf_counter() - t0)
            except Exception as exc:  # classified by the source; the batch goes on
                shutil.rmtree(staged, ignore_errors=True)
                failure = self.source.classify(exc)
                if not failure.transient or attempt > self.retries:
                    log.warning("study %s failed after %d attempt(s): %s", name, attempt, failure.reason)
                    return StageOutcome(study, name, "failed", failure, attempts=attempt,
                                        seconds=time.perf_counter() - t0)  # fmt: skip
                wait = self.backoff_s * 2 ** (attempt - 1)
                log.info("study %s: %s; attempt %d again in %.1f s", name, failure.reason, attempt + 1, wait)
                time.sleep(wait)

    def _write(self, instances: Iterator[Dataset | FileProblem], folder: Path) -> tuple[int, int, list[FileProblem]]:
        """Write every instance; returns (written, bytes, skipped ones, named by ``problem_ref``). An instance that
        cannot be read (the source yields a FileProblem), transformed or written is skipped; an error of the source
        itself (the network) ends the study."""
        n = size = 0
        skipped: list[FileProblem] = []
        for ds in instances:
            if isinstance(ds, FileProblem):
                skipped.append(FileProblem(self.problem_ref(ds.path) or "", ds.kind, ds.reason))
                continue
            try:
                if self.transform is not None:
                    ds = self.transform(ds)
                series = _safe(str(ds.get("SeriesInstanceUID", "") or "_"))
                path = folder / series / f"{_safe(str(ds.SOPInstanceUID))}.dcm"
                path.parent.mkdir(exist_ok=True)
                dcmwrite(path, ds, enforce_file_format=True)
            except Exception as exc:  # one bad instance never stops its study
                log.warning("skipped an instance that could not be staged (%s)", type(exc).__name__)
                reason = f"could not be staged ({type(exc).__name__})"
                path = self.problem_ref(str(getattr(ds, "filename", "") or "")) or ""
                skipped.append(FileProblem(path, "stage_skipped", reason))
                continue
            n += 1
            size += os.path.getsize(path)
        return n, size, skipped
