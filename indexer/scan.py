"""Scan an archive folder: headers only → studies and series with their views, recorded in the catalog.

Each file is read once, header only, in a process pool. Bad files are recorded in ``ingest_errors`` with a
readable reason and never stop the batch. A study whose files have not changed since the last scan is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from catalog.errors import clear_errors, record_error
from catalog.models import Series, Study, StudyState
from catalog.reports import link_reports
from catalog.studies import study_by_uid
from indexer.dicom import views
from indexer.dicom.assemble import AssembledSeries, Problem, assemble_series, drop_duplicates, group_by_study
from indexer.dicom.files import NotRegularFile, iter_files
from indexer.dicom.headers import FrameHeader, NotAnImage, read_headers
from indexer.pool import process_pool

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    """What one scan found, for the summary."""

    files: int = 0
    studies_new: int = 0
    studies_changed: int = 0
    studies_unchanged: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class FileError:
    path: str
    kind: str
    reason: str
    study_uid: str | None = None


def _read_one(path: str, strict: bool = False) -> tuple[str, list[FrameHeader] | None, FileError | None]:
    warnings.simplefilter("ignore")  # a truncated file is reported as an error row, not a warning per file
    try:
        return path, read_headers(Path(path), strict=strict), None
    except NotRegularFile as exc:
        return path, None, FileError(path, "not_a_file", f"not read: {exc}")
    except InvalidDicomError as exc:
        return path, None, FileError(path, "not_dicom", f"not a readable DICOM file: {exc}")
    except NotAnImage as exc:
        return path, None, FileError(path, "not_mr_image", str(exc), exc.study_uid)
    except OSError as exc:  # vanished mid-scan, no permission: the message without the path
        return path, None, FileError(path, "unreadable", f"cannot be read ({exc.strerror or type(exc).__name__})")
    except Exception as exc:  # a batch never stops on one file
        return path, None, FileError(path, "unreadable", f"{type(exc).__name__}: {exc}")


def read_all(
    paths: list[str], workers: int, progress: bool, *, strict: bool = False
) -> Iterator[tuple[str, list | None, FileError | None]]:
    bar = tqdm(total=len(paths), desc="scan headers", unit="file", disable=not progress)
    read = partial(_read_one, strict=strict)
    if workers <= 1:
        for p in paths:
            yield read(p)
            bar.update()
    else:
        with process_pool(workers) as pool:
            for item in pool.map(read, paths, chunksize=64):
                yield item
                bar.update()
    bar.close()


def patient_key(patient_id: str | None, fallback: str, salt: str) -> str:
    """Pseudonymous, stable key of a patient: a salted hash, never the id itself."""
    return hashlib.sha256(f"{salt}:{patient_id or fallback}".encode()).hexdigest()[:16]


def fingerprint(frames: list[FrameHeader]) -> str:
    h = hashlib.sha1()
    for f in sorted(frames, key=lambda f: (f.path, f.frame)):
        size = os.path.getsize(f.path) if os.path.exists(f.path) else -1
        h.update(f"{f.path}|{f.frame}|{f.sop_uid}|{size}\n".encode())
    return h.hexdigest()


def _geometry(s: AssembledSeries) -> views.SeriesGeometry:
    return views.SeriesGeometry(
        key=s.series_uid,
        description=s.description,
        normal=s.normal,
        n_slices=s.n_slices,
        n_phases=s.n_phases,
        has_inversion=s.has_inversion,
    )


def _series_row(s: AssembledSeries, decision: views.ViewDecision) -> Series:
    first = s.frames[0]
    frames = [[f.path, i, j, f.frame] for i, row in enumerate(s.grid) for j, f in enumerate(row)]
    return Series(
        series_uid=s.series_uid,
        series_number=s.series_number,
        description=s.description or None,
        view=decision.view,
        view_basis=decision.basis,
        n_slices=s.n_slices,
        n_phases=s.n_phases,
        rows=first.rows,
        columns=first.columns,
        pixel_spacing_mm=first.pixel_spacing,
        slice_thickness_mm=first.slice_thickness,
        transfer_syntax=first.transfer_syntax or None,
        normal=[round(float(x), 6) for x in s.normal] if s.normal is not None else None,
        frames=frames,
    )


def _common_path(paths: list[str]) -> str:
    return paths[0] if len(paths) == 1 else os.path.commonpath(paths)


def record_problems(session: Session, study_uid: str | None, problems: list[Problem]) -> None:
    for p in problems:
        record_error(session, stage="scan", kind=p.kind, reason=p.reason, path=p.path, study_uid=study_uid)


def write_study(
    session: Session,
    study_uid: str,
    series: list[AssembledSeries],
    decisions: dict[str, views.ViewDecision],
    frames: list[FrameHeader],
    *,
    source: str,
    source_ref: str,
    salt: str,
) -> str:
    """Insert or refresh one study; returns 'new', 'changed' or 'unchanged'."""
    fp = fingerprint(frames)
    existing = study_by_uid(session, study_uid)
    if existing is not None and existing.fingerprint == fp and existing.state != StudyState.WITHDRAWN:
        return "unchanged"
    attrs = dict(frames[0].study)
    study = existing or Study(study_uid=study_uid)
    for key, value in attrs.items():
        setattr(study, key, value)
    study.patient_key = patient_key(attrs.get("patient_id"), study_uid, salt)
    study.source, study.source_ref = source, source_ref
    study.fingerprint = fp
    study.views = sorted({d.view for d in decisions.values()})
    if study.state != StudyState.WITHDRAWN:
        study.state = StudyState.SCANNED
    study.clip_path = None
    if existing is not None and existing.series:
        existing.series.clear()  # delete the old rows first: the new ones reuse their series UIDs
        session.flush()
    study.series = [_series_row(s, decisions[s.series_uid]) for s in series]
    if existing is None:
        session.add(study)
    session.flush()
    link_reports(session, [study.id])
    return "changed" if existing is not None else "new"


def scan_folder(
    db: sessionmaker,
    root: Path,
    *,
    salt: str,
    strict: bool = False,
    workers: int = 1,
    progress: bool = True,
    source: str = "folder",
    source_ref: str | None = None,
) -> ScanResult:
    """Scan ``root`` and record its studies, series and errors in the catalog, committing study by study.

    ``salt`` is the pseudonymous patient key's (``Settings.pseudonym_salt``), ``strict`` the reading strictness
    (``Settings.dicom_read``). ``source``/``source_ref`` say where the studies came from (``folder`` + archive root
    by default; a staged source passes its own kind and reference).
    """
    root = Path(root).resolve()
    result = ScanResult()
    skipped: list[tuple[Path, str]] = []
    paths = [str(p) for p in iter_files(root, skipped)]
    result.files = len(paths)
    frames: list[FrameHeader] = []
    file_errors = [FileError(str(p), "not_a_file", f"not read: {why}") for p, why in skipped]
    for _path, found, error in read_all(paths, workers, progress, strict=strict):
        if error is not None:
            file_errors.append(error)
        else:
            frames.extend(found)

    with db.begin() as session:
        clear_errors(session, stage="scan", path_prefix=str(root))
        _record_file_errors(session, file_errors, result)

    assembled = _assemble(frames)
    calibration = views.calibrate([[_geometry(s) for s in series] for series, _, _ in assembled.values()])
    refs = calibration.reference()
    log.info("long-axis reference angles: %s", {k: round(v, 1) for k, v in refs.items()})

    for study_uid, (series, study_frames, problems) in tqdm(
        sorted(assembled.items()), desc="catalog", unit="study", disable=not progress
    ):
        geos = [_geometry(s) for s in series]
        axis = views.study_long_axis(geos)
        decisions = {g.key: views.classify(g, axis, refs) for g in geos}
        decisions = views.assign_study_lax([g for g in geos if g.n_phases >= 4], decisions, axis, refs)
        with db.begin() as session:  # one study, one transaction: a resumed scan redoes only what was not done
            record_problems(session, study_uid, problems)
            outcome = write_study(
                session, study_uid, series, decisions, study_frames,
                source=source, source_ref=source_ref or str(root), salt=salt,
            )  # fmt: skip
        for p in problems:
            result.errors[p.kind] += 1
        setattr(result, f"studies_{outcome}", getattr(result, f"studies_{outcome}") + 1)
    return result


def _assemble(frames: list[FrameHeader]) -> dict[str, tuple[list[AssembledSeries], list[FrameHeader], list[Problem]]]:
    """Study UID → its series (assembled, in series order), its frames without duplicates, and its problems."""
    assembled = {}
    for study_uid, by_series in group_by_study(frames).items():
        all_frames, problems = drop_duplicates([f for fs in by_series.values() for f in fs])
        by_series = defaultdict(list)
        for f in all_frames:
            by_series[f.series_uid].append(f)
        series = [assemble_series(fs) for fs in by_series.values()]
        series.sort(key=lambda s: (s.series_number or 0, s.series_uid))
        assembled[study_uid] = (series, all_frames, problems + [p for s in series for p in s.problems])
    return assembled


def _record_file_errors(session: Session, errors: list[FileError], result: ScanResult) -> None:
    """One row per bad file; the files of one non-MR study are one row for the study (common folder)."""
    groups: dict[tuple[str | None, str, str], list[str]] = defaultdict(list)
    for e in errors:
        groups[(e.study_uid, e.kind, e.reason)].append(e.path)
    for (study_uid, kind, reason), paths in groups.items():
        if study_uid is not None and len(paths) > 1 and reason.startswith("modality"):
            kind, reason, paths = "non_mr_study", f"{reason} ({len(paths)} files)", [_common_path(paths)]
        for path in paths:
            record_error(session, stage="scan", kind=kind, reason=reason, path=path, study_uid=study_uid)
            result.errors[kind] += 1
