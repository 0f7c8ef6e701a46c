"""Phantom archive → ingest: speed (against a bare pydicom header loop), view accuracy per site, fault coverage.

    python bench/ingest_bench.py --studies 60 --faults 0.05 --seed 1 [--workers 2] [--keep DIR]

Prints tables; the numbers in the issue notes come from here. Reads ground_truth.csv and faults.csv (evaluation
files the product never reads).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pydicom
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import IngestError, Study
from indexer.dicom.files import iter_files
from indexer.pipeline import ingest_folder
from migrations.apply import upgrade
from phantom.archive import synthesize

console = Console()


def bare_header_loop(root: Path) -> tuple[int, float]:
    """The floor: read every file's header with pydicom, nothing else."""
    n, t0 = 0, time.perf_counter()
    for path in iter_files(root):
        with contextlib.suppress(Exception):
            pydicom.dcmread(path, stop_before_pixels=True, force=True)
        n += 1
    return n, time.perf_counter() - t0


def view_accuracy(url: str, truth_csv: Path) -> tuple[dict[str, list[int]], list[str]]:
    """Per site: [studies with exactly the ground-truth view set, studies compared]; plus the mismatches."""
    truth = {r["study_uid"]: r for r in csv.DictReader(truth_csv.open())}
    per_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    wrong = []
    with session_scope(url) as s:
        for st in s.scalars(select(Study)):
            t = truth.get(st.study_uid)
            if t is None:
                continue
            expected = set(filter(None, t["views"].split(";")))
            ok = set(st.views) == expected
            per_site[t["site"]][0] += ok
            per_site[t["site"]][1] += 1
            if not ok:
                wrong.append(f"{st.study_uid}: got {sorted(st.views)} expected {sorted(expected)}")
    return per_site, wrong


def fault_coverage(url: str, out: Path) -> tuple[int, int, list[str]]:
    """A planted fault is covered when an error row names its path (or a file under it) or its study."""
    faults = list(csv.DictReader((out / "faults.csv").open()))
    with session_scope(url) as s:
        errors = [(e.path or "", e.study_uid or "") for e in s.scalars(select(IngestError))]
    missed = []
    for f in faults:
        path = str((out / f["path"]).resolve()) if f["path"] else ""
        hit = any(
            (path and (p == path or p.startswith(path + "/") or path.startswith(p + "/")))
            or (f["study_uid"] and uid == f["study_uid"] and not path)
            for p, uid in errors
        )
        if not hit:
            missed.append(f"{f['kind']}: {f['path']}")
    return len(faults) - len(missed), len(faults), missed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--studies", type=int, default=60)
    ap.add_argument("--faults", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="write the archive and data here instead of a temporary folder")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    out, data = base / "archive", base / "data"
    url = f"sqlite:///{(data / 'catalog.sqlite').resolve()}"
    data.mkdir(parents=True, exist_ok=True)
    upgrade(url)

    t0 = time.perf_counter()
    summary = synthesize(
        out, args.studies, seed=args.seed, fault_rate=args.faults, progress=False, workers=args.workers
    )
    synth_s = time.perf_counter() - t0
    n_files, bare_s = bare_header_loop(out / "dicom")
    result = ingest_folder(
        url, out / "dicom", data / "clips", reports=out / "reports.csv", workers=args.workers, progress=False
    )
    scan_s, prep_s = result.seconds["scan"], result.seconds["preprocess"]

    table = Table(title=f"ingest speed ({args.studies} studies, {n_files} files, {args.workers} workers)")
    for col in ("stage", "seconds", "studies/s", "files/s", "× bare header loop"):
        table.add_column(col)
    table.add_row("synth", f"{synth_s:.1f}", f"{args.studies / synth_s:.2f}", f"{summary.n_files / synth_s:.0f}", "")
    table.add_row(
        "bare pydicom header loop (1 process)",
        f"{bare_s:.1f}",
        f"{args.studies / bare_s:.2f}",
        f"{n_files / bare_s:.0f}",
        "1.00",
    )
    table.add_row(
        "scan (headers → catalog)",
        f"{scan_s:.1f}",
        f"{args.studies / scan_s:.2f}",
        f"{n_files / scan_s:.0f}",
        f"{scan_s / bare_s:.2f}",
    )
    table.add_row("preprocess (pixels → clips)", f"{prep_s:.1f}", f"{args.studies / prep_s:.2f}", "", "")
    table.add_row("ingest total", f"{scan_s + prep_s:.1f}", f"{args.studies / (scan_s + prep_s):.2f}", "", "")
    console.print(table)
    console.print(f"archive size {summary.bytes / 1e6:.1f} MB, {summary.bytes / 1e6 / args.studies:.2f} MB/study")

    per_site, wrong = view_accuracy(url, out / "ground_truth.csv")
    vt = Table(title="view classification: studies whose view set equals ground truth")
    for col in ("site", "correct", "studies", "accuracy"):
        vt.add_column(col)
    for site, (ok, n) in sorted(per_site.items()):
        vt.add_row(site, str(ok), str(n), f"{ok / n:.3f}")
    console.print(vt)
    for w in wrong[:20]:
        console.print(f"  mismatch {w}")
    covered, total, missed = fault_coverage(url, out)
    console.print(f"planted faults recorded in the errors table: {covered}/{total}")
    for m in missed:
        console.print(f"  missed {m}")
    print(
        json.dumps(
            {
                "synth_studies_per_s": args.studies / synth_s,
                "scan_s": scan_s,
                "preprocess_s": prep_s,
                "bare_header_s": bare_s,
                "view_accuracy": {k: v[0] / v[1] for k, v in per_site.items()},
                "faults_covered": [covered, total],
            }
        )
    )


if __name__ == "__main__":
    main()
