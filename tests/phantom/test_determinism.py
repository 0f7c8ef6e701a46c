from __future__ import annotations

from pathlib import Path

from phantom.archive import synthesize


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(a, 1, sites=["site_b"], seed=3, progress=False)
    synthesize(b, 1, sites=["site_b"], seed=3, progress=False)
    synthesize(c, 1, sites=["site_b"], seed=4, progress=False)
    ta, tb = _tree(a), _tree(b)
    assert ta.keys() == tb.keys()
    assert all(ta[k] == tb[k] for k in ta)
    uid_a = (a / "ground_truth.csv").read_text().splitlines()[1].split(",")[0]
    uid_c = (c / "ground_truth.csv").read_text().splitlines()[1].split(",")[0]
    assert uid_a != uid_c


def test_summary_counts(archive) -> None:
    root, summary = archive
    assert summary.n_studies == 7
    on_disk = [p for p in (root / "dicom").rglob("*") if p.is_file()]
    assert summary.n_files == len(on_disk)
    assert summary.bytes > 0 and summary.seconds > 0
