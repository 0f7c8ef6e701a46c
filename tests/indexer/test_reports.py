from __future__ import annotations

from indexer.reports import RowProblem, extract_impression, read_report_export, split_sections

REPORT = """Patient: DOE, Jane  MRN: 12345678
Indication: breathlessness.
TECHNIQUE: cine SSFP, LGE.
Findings:
The left ventricle is dilated (LVEDVi 128 mL/m2) with LVEF 28%.
CONCLUSION:
Dilated left ventricle with severely impaired systolic function.
No late gadolinium enhancement.
"""


def test_sections_and_impression_with_varied_headings():
    sections = split_sections(REPORT)
    assert "LVEF 28%" in sections["findings"]
    assert extract_impression(REPORT).startswith("Dilated left ventricle")
    assert "No late gadolinium" in extract_impression(REPORT)
    assert extract_impression("Opinion - normal study.") == "normal study."
    assert extract_impression("Summary\nHypertrophic cardiomyopathy.\n") == "Hypertrophic cardiomyopathy."


def test_impression_falls_back_to_last_paragraph():
    assert extract_impression("Some findings.\n\nLikely myocarditis.") == "Likely myocarditis."


def test_export_rows_with_other_column_names_and_bad_rows(tmp_path):
    path = tmp_path / "ris.csv"
    path.write_text('AccessionNumber,Report Text,Date\nA1,"Impression: normal",2024-01-02\n,"no accession",\n')
    rows = list(read_report_export(path))
    assert rows[0].accession == "A1" and rows[0].report_date.isoformat() == "2024-01-02"
    assert isinstance(rows[1], RowProblem) and "no accession" in rows[1].reason and rows[1].where == "row 2"
