from __future__ import annotations

import re

from phantom.archive import GROUND_TRUTH_COLUMNS
from phantom.conditions import CONDITIONS
from tests.phantom.helpers import read_csv

IMPRESSION = re.compile(r"^(IMPRESSION:|Impression|CONCLUSION:|Summary:|Opinion:|Conclusion:)$", re.M)


def test_ground_truth_columns_and_values(archive) -> None:
    root, _ = archive
    rows = read_csv(root / "ground_truth.csv")
    assert len(rows) == 7
    assert list(rows[0].keys()) == GROUND_TRUTH_COLUMNS
    for r in rows:
        assert set(r["conditions"].split(";")) <= set(CONDITIONS)
        assert set(r["views"].split(";")) <= {"sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax", "other"}
        for k in ("lv_dilation", "lge_present", "pericardial_effusion"):
            assert r[k] in ("0", "1")
        assert (r["severity"] == "none") == (r["conditions"] == "normal")


def test_reports_have_sections_measurements_and_identifiers(archive) -> None:
    root, _ = archive
    truth = {r["accession"]: r for r in read_csv(root / "ground_truth.csv")}
    reports = read_csv(root / "reports.csv")
    assert 1 <= len(reports) <= len(truth)
    for rep in reports:
        text = rep["report_text"]
        assert rep["accession"] in truth
        assert "\n" in text
        m = IMPRESSION.search(text)
        assert m, text
        impression = text[m.end() :].strip()
        assert len(impression) > 5
        assert rep["accession"] in text.split("\n")[0] or truth[rep["accession"]]["patient_id"] in text
        lvef = round(float(truth[rep["accession"]]["lvef"]))
        assert re.search(rf"\b{lvef}\s?(%|percent|per cent)", text), text
