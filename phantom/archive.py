"""Public entry point: write a synthetic CMR archive with reports, ground truth and a fault list.

Layout under ``out_dir``::

    dicom/<site>/<patient_id>/<accession>/<series_number>_<description>/<file>   the archive
    reports.csv        accession,report_date,report_text (RIS export; ~8 % of studies have none)
    ground_truth.csv   evaluation only (see GROUND_TRUTH_COLUMNS)
    faults.csv         kind,path,study_uid,study_ok (see phantom.faults)

Every study draws from its own generator seeded by (seed, study index), so the same seed gives the same
bytes, UIDs included.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from phantom.conditions import build_case, follow_up_severity, sample_condition
from phantom.dicom_writer import UidSource
from phantom.faults import RENDER_FAULTS, FaultRow, apply_fault, plan_faults
from phantom.measure import FINDINGS
from phantom.patients import make_patient, random_study_date
from phantom.reports import WrittenReport, write_report_and_truth
from phantom.sites import SITES, site_names
from phantom.study import StudyRecord, StudyRequest, StudyWriter

log = logging.getLogger(__name__)

FOLLOW_UP_PROB = 0.15  # share of patients with a second study
NO_REPORT_PROB = 0.08
VIEW_ORDER = ["sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax", "other"]
GROUND_TRUTH_COLUMNS = [
    "study_uid",
    "accession",
    "patient_id",
    "site",
    "conditions",
    "severity",
    "lvef",
    "lvedvi",
    "lv_max_wall_mm",
    "rvef",
    "rvedvi",
    *FINDINGS,
    "views",
    "lv_center_x",
    "lv_center_y",
    "lv_center_z",
    "territory",  # LAD / RCA / LCx of an infarct
    "lge_pattern",  # phantom.report_phrases LGE pattern key
    "rare_diagnosis",  # a rare diagnosis the report names (empty: none, or no report)
    "report_error",  # a planted report error: missed:<finding> | omitted:<finding> | overcalled:<finding>
]


@dataclass(frozen=True)
class SynthSummary:
    n_studies: int
    n_files: int
    bytes: int
    seconds: float


def plan_requests(n_studies: int, sites: list[str], seed: int) -> list[StudyRequest]:
    """Patients, sites, conditions and dates for every study (follow-ups share the patient)."""
    rng = np.random.default_rng([seed, 0])
    requests: list[StudyRequest] = []
    n_patients = 0
    while len(requests) < n_studies:
        site_name = sites[n_patients % len(sites)]
        conditions, severity = sample_condition(rng)
        age_range = build_case(np.random.default_rng([seed, 2, n_patients]), conditions, severity).age_range
        date = random_study_date(rng)
        patient = make_patient(rng, age_range, date)
        n_patients += 1
        requests.append(StudyRequest(len(requests), patient, site_name, SITES[site_name], conditions, severity, date))
        if len(requests) < n_studies and rng.random() < FOLLOW_UP_PROB:
            later = date + dt.timedelta(days=int(rng.integers(90, 730)))
            requests.append(
                StudyRequest(
                    len(requests),
                    patient,
                    site_name,
                    SITES[site_name],
                    conditions,
                    follow_up_severity(rng, severity),
                    later,
                    prior_date=date,
                    prior_severity=severity,
                )
            )
    return requests


def synthesize(
    out_dir: Path,
    n_studies: int,
    sites: list[str] | None = None,
    seed: int = 0,
    fault_rate: float = 0.0,
    progress: bool = True,
    workers: int = 1,
) -> SynthSummary:
    """Write ``n_studies`` synthetic CMR studies (DICOM + reports + ground truth + faults) to ``out_dir``.

    ``sites`` picks presets from phantom.sites (None: all, round-robin over patients). Raises ValueError
    for an unknown site. ``workers`` > 1 writes studies in that many processes (same bytes as one).
    """
    t0 = time.perf_counter()
    sites = list(sites) if sites else site_names()
    unknown = [s for s in sites if s not in SITES]
    if unknown:
        raise ValueError(f"unknown site preset(s) {unknown}; choose from {site_names()}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    requests = plan_requests(n_studies, sites, seed)
    faults = plan_faults(np.random.default_rng([seed, 3]), n_studies, fault_rate)
    for req in requests:
        req.fault = faults.get(req.index)

    truth_rows, report_rows, fault_rows = [], [], []
    n_files = n_bytes = 0
    jobs = [(out_dir, req, seed) for req in requests]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        made = pool.map(_make_study, *zip(*jobs, strict=True)) if pool else (_make_study(*j) for j in jobs)
        for files, nbytes, truth, report, faulted in tqdm(
            made, total=len(jobs), desc="synth", unit="study", disable=not progress
        ):
            n_files += files
            n_bytes += nbytes
            truth_rows.append(truth)
            if report is not None:
                report_rows.append(report)
            fault_rows.extend(faulted)
    finally:
        if pool:
            pool.shutdown()

    _write_csv(out_dir / "ground_truth.csv", GROUND_TRUTH_COLUMNS, truth_rows)
    _write_csv(out_dir / "reports.csv", ["accession", "report_date", "report_text"], report_rows)
    _write_csv(
        out_dir / "faults.csv",
        ["kind", "path", "study_uid", "study_ok"],
        [[f.kind, f.path, f.study_uid, f.study_ok] for f in fault_rows],
    )
    seconds = time.perf_counter() - t0
    log.info("synthesised %d studies, %d files, %.1f MB in %.1f s", len(requests), n_files, n_bytes / 1e6, seconds)
    return SynthSummary(len(requests), n_files, n_bytes, seconds)


def _make_study(out_dir: Path, req: StudyRequest, seed: int) -> tuple[int, int, list, list | None, list]:
    """Write one study with its own generators; returns files, bytes, truth row, report row, fault rows."""
    rng = np.random.default_rng([seed, 1, req.index])
    uids = UidSource(np.random.default_rng([seed, 4, req.index]))
    rec = StudyWriter(out_dir, req, rng, uids).write()
    n_files, n_bytes = len(rec.files), rec.n_bytes
    report_row = None
    report = WrittenReport("")
    report_rng = np.random.default_rng([seed, 5, req.index])
    if report_rng.random() >= NO_REPORT_PROB:
        report = write_report_and_truth(
            report_rng,
            rec.spec,
            rec.measurements,
            rec.findings,
            req.patient,
            rec.header.accession,
            req.date,
            rec.header.field_strength,
            req.prior_date,
            req.prior_severity,
        )
        report_date = req.date + dt.timedelta(days=int(report_rng.integers(0, 5)))
        report_row = [rec.header.accession, report_date.isoformat(), report.text]
    fault_rows: list = []
    if req.fault:
        fault_rng = np.random.default_rng([seed, 6, req.index])
        fault_rows = apply_fault(req.fault, rec, out_dir, fault_rng, uids)
        if req.fault not in RENDER_FAULTS:
            n_files += 1 if req.fault in ("duplicate_sop", "non_dicom", "no_pixel_data") else 0
            n_files += 6 if req.fault == "non_mr" else 0
    return n_files, n_bytes, _truth_row(rec, report), report_row, fault_rows


def _truth_row(rec: StudyRecord, report: WrittenReport) -> list:
    m, f = rec.measurements, rec.findings
    views = ";".join(v for v in VIEW_ORDER if v in rec.views)
    return [
        rec.header.study_uid,
        rec.header.accession,
        rec.request.patient.patient_id,
        rec.request.site_name,
        ";".join(rec.spec.conditions),
        rec.spec.severity,
        f"{m.lvef:.1f}",
        f"{m.lvedvi:.1f}",
        f"{m.lv_max_wall_mm:.1f}",
        f"{m.rvef:.1f}",
        f"{m.rvedvi:.1f}",
        *[int(f[k]) for k in FINDINGS],
        views,
        *[f"{c:.2f}" for c in rec.lv_center],
        rec.spec.territory or "",
        rec.spec.lge_pattern or "",
        report.rare_diagnosis,
        report.report_error,
    ]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerows(rows)


__all__ = ["FaultRow", "SynthSummary", "synthesize"]
