"""Reports from the RIS: HL7 v2 ORU^R01 (files and MLLP) and FHIR R4 DiagnosticReport, on both databases.

A report before its study is linked when the study arrives; an amended report wins when newer, a late original
does not; every version is kept; unreadable messages are refused with a reason and never stop the rest.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from catalog.db import get_engine, session_scope
from catalog.facts import facts_of_studies
from catalog.models import IngestError, Report, ReportVersion
from catalog.reports import link_reports
from indexer.ris import (
    MllpListener,
    RisMessageError,
    fhir_reports,
    import_files,
    import_reports,
    parse_diagnostic_report,
    parse_oru,
    split_messages,
)
from tests.search.builders import StudySpec, add_studies


def oru(accession: str, lines: list[str], *, status: str = "F", when: str = "20240102101500",
        control: str = "M1") -> str:
    segments = [
        f"MSH|^~\\&|RIS|HOSP|CMR|HOSP|{when}||ORU^R01|{control}|P|2.5",
        "PID|1||MRN0001^^^HOSP||DOE^JANE||19600101|F",
        "|".join(["OBR", "1", f"PL{accession}", accession, "CMR^Cardiac MRI", "", "", when[:8], *[""] * 14, when,
                  "", "", status]),  # OBR-22 results time, OBR-25 result status
        *[f"OBX|{i}|TX|IMP^Impression||{line}||||||{status}" for i, line in enumerate(lines, start=1)],
    ]
    return "\r".join(segments)


def diagnostic_report(accession: str, conclusion: str, *, status: str = "final",
                      issued: str = "2024-01-02T10:15:00Z", form: str | None = None) -> dict:
    resource = {
        "resourceType": "DiagnosticReport", "status": status,
        "code": {"text": "Cardiac MRI"},
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "ACSN"}]}, "value": accession}],
        "issued": issued, "conclusion": conclusion,
    }
    if form is not None:
        resource["presentedForm"] = [{"contentType": "text/plain", "data": base64.b64encode(form.encode()).decode()}]
    return resource


def test_parse_oru_and_fhir():
    r = parse_oru(oru("A100", ["Dilated LV, LVEF 25 %.", "No LGE."], status="C"))
    assert (r.accession, r.status, r.source) == ("A100", "corrected", "hl7")
    assert r.text == "Dilated LV, LVEF 25 %.\nNo LGE." and r.observed_at == dt.datetime(2024, 1, 2, 10, 15)
    with pytest.raises(RisMessageError, match="accession"):
        parse_oru(oru("", ["text"]))
    with pytest.raises(RisMessageError, match="ORU"):
        parse_oru(oru("A1", ["x"]).replace("ORU^R01", "ADT^A01"))
    with pytest.raises(RisMessageError):
        parse_oru("this is not HL7")
    f = parse_diagnostic_report(diagnostic_report("A200", "Normal study.", form="FINDINGS: LVEF 61 %."))
    assert (f.accession, f.status, f.text) == ("A200", "final", "Normal study.\nFINDINGS: LVEF 61 %.")
    assert f.observed_at == dt.datetime(2024, 1, 2, 10, 15)
    assert parse_diagnostic_report(diagnostic_report("A200", "x", status="entered-in-error")).status == "cancelled"
    with pytest.raises(RisMessageError, match="DiagnosticReport"):
        parse_diagnostic_report({"resourceType": "Patient"})
    with pytest.raises(RisMessageError, match="valid"):
        parse_diagnostic_report({"resourceType": "DiagnosticReport", "status": "final", "code": {},
                                 "issued": "yesterday"})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": diagnostic_report("A1", "one")}, {"resource": {"resourceType": "Patient"}},
        {"resource": diagnostic_report("", "no accession")}]}
    got = list(fhir_reports(bundle))
    assert got[0].accession == "A1" and isinstance(got[1], RisMessageError) and len(got) == 2
    assert len(split_messages(oru("A1", ["a"]) + "\n" + oru("A2", ["b"]))) == 2


def _current(url: str, accession: str) -> tuple[str | None, list[tuple[str, bool]]]:
    with session_scope(url) as session:
        report = session.scalar(select(Report).where(Report.accession == accession))
        versions = session.execute(select(ReportVersion.status, ReportVersion.applied)
                                   .where(ReportVersion.accession == accession).order_by(ReportVersion.id)).all()
        return (report.text if report else None), [tuple(v) for v in versions]


def test_amendments_before_and_after_the_study(db_url, tmp_path):
    db = sessionmaker(bind=get_engine(db_url), expire_on_commit=False)
    original = parse_oru(oru("A8.1", ["Normal LV size. No LGE."], when="20240102100000"))
    corrected = parse_oru(oru("A8.1", ["Dilated LV, LVEF 30 %. Subendocardial LGE."], status="C",
                              when="20240103090000"))
    preliminary = parse_oru(oru("A8.1", ["draft"], status="P", when="20240104090000"))
    # the correction arrives first, the original late: the correction stays current
    got = import_reports(db, [corrected, original, preliminary, RisMessageError("garbled")], ref="hl7")
    assert (got.applied, got.kept_older, got.rejected) == (1, 2, 1)
    text, versions = _current(db_url, "A8.1")
    assert text.startswith("Dilated LV") and versions == [("corrected", True), ("final", False),
                                                          ("preliminary", False)]
    # a newer amendment (FHIR) wins; a cancellation changes nothing
    amended = parse_diagnostic_report(diagnostic_report("A8.1", "Dilated LV, LVEF 28 %.", status="amended",
                                                        issued="2024-01-05T08:00:00Z"))
    cancelled = parse_diagnostic_report(diagnostic_report("A8.1", "x", status="cancelled",
                                                          issued="2024-01-06T08:00:00Z"))
    assert import_reports(db, [amended, cancelled], ref="fhir").applied == 1
    assert _current(db_url, "A8.1")[0] == "Dilated LV, LVEF 28 %."
    # the study (accession A8.1) arrives after its report: linked, with the facts of the current version
    (study_id,) = add_studies(db_url, [StudySpec(uid="8.1", patient="p1")])
    with session_scope(db_url) as session:
        assert link_reports(session) == 1
    with session_scope(db_url) as session:
        facts = facts_of_studies(session, [study_id])[study_id]
    assert facts["lvef"] == 28 and facts["findings"]["lv_dilation"] == "present"
    with session_scope(db_url) as session:
        errors = session.scalars(select(IngestError).where(IngestError.stage == "report")).all()
    assert [e.kind for e in errors] == ["bad_ris_message"] and "garbled" in errors[0].reason


def test_files_and_mllp_listener(sqlite_url, tmp_path):
    from migrations.apply import upgrade

    upgrade(sqlite_url)
    hl7_file = tmp_path / "batch.hl7"
    hl7_file.write_text(oru("A400", ["Pericardial effusion."]) + "\n" + oru("", ["no accession"]))
    fhir_file = tmp_path / "bundle.json"
    fhir_file.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                     "entry": [{"resource": diagnostic_report("A401", "LVEF 55 %.")}]}))
    (tmp_path / "bad.json").write_text("{not json")
    got = import_files(sqlite_url, [hl7_file, fhir_file, tmp_path / "bad.json"])
    assert (got.applied, got.rejected) == (2, 2)
    latin1 = tmp_path / "latin1.hl7"  # RIS files are often not UTF-8
    latin1.write_bytes(oru("A404", ["Kleiner Perikarderguss, Größe 5 mm."]).encode("latin-1"))
    assert import_files(sqlite_url, [latin1]).applied == 1
    assert _current(sqlite_url, "A404")[0] == "Kleiner Perikarderguss, Größe 5 mm."
    listener = MllpListener(sqlite_url, host="127.0.0.1", port=0)
    listener.start()
    try:
        with MLLPClient("127.0.0.1", listener.port) as client:
            ack = hl7.parse(client.send_message(oru("A402", ["Normal study."], control="C7")).decode())
            assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "C7"
            nack = hl7.parse(client.send_message(oru("", ["x"], control="C8")).decode())
            assert str(nack.segment("MSA")[1]) == "AE"
            ack = hl7.parse(client.send_message(oru("A403", ["No LGE."], control="C9")).decode())
            assert str(ack.segment("MSA")[1]) == "AA", "the listener goes on after a bad message"
    finally:
        listener.stop()
    assert _current(sqlite_url, "A402")[0] == "Normal study." and _current(sqlite_url, "A403")[0] == "No LGE."
