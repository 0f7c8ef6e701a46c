"""Reports as the RIS sends them: HL7 v2 ORU^R01 (over MLLP, or files) and FHIR R4 DiagnosticReport (JSON).

Each message becomes a :class:`RisReport` (accession, text, status, the RIS's own time) and goes to the same report
import as the CSV export (impression, sections and facts read alike). What a real RIS expects:

- **A report before its study** is stored under its accession number and linked when the study is scanned.
- **Amended reports**: every version is kept in ``report_versions`` (audit); the current report is the newest by
  the RIS's time (HL7 OBR-22, else MSH-7; FHIR ``issued``) among final, corrected and amended versions, so a
  correction replaces the original and a late-delivered original does not replace the correction. A preliminary
  version counts only while no final one exists; a cancelled one (HL7 ``X``, FHIR ``cancelled`` /
  ``entered-in-error``) is kept and changes nothing.
- A message that cannot be read, or names no accession, is answered with an HL7 application error (``AE``) and
  recorded in ``ingest_errors`` with its reason; it never stops the listener.

HL7 fields read: accession OBR-3 (filler order number), else OBR-18, else ORC-3; status OBR-25; text: the OBX-5
values of text types (TX, FT, ST) in order. FHIR: accession the ``identifier`` typed ``ACSN`` (HL7 v2-0203), else
the first identifier; text ``conclusion`` and every text/plain ``presentedForm`` (base64), joined.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hl7
import hl7.mllp
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from catalog.db import get_engine
from catalog.errors import record_error
from catalog.models import Report, ReportVersion
from catalog.reports import upsert_report
from indexer.reports import decode_export, extract_impression, split_sections, store_facts

log = logging.getLogger(__name__)

FINAL = ("final", "corrected", "amended")
HL7_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary", "I": "preliminary",
              "S": "preliminary", "A": "preliminary", "X": "cancelled", "D": "cancelled"}
FHIR_STATUS = {"final": "final", "amended": "amended", "corrected": "corrected", "appended": "amended",
               "preliminary": "preliminary", "partial": "preliminary", "registered": "preliminary",
               "cancelled": "cancelled", "entered-in-error": "cancelled"}
TEXT_TYPES = ("TX", "FT", "ST")


class RisMessageError(ValueError):
    """A message that is not a readable report (the reason names no patient)."""


@dataclass(frozen=True)
class RisReport:
    accession: str
    text: str
    status: str  # final | corrected | amended | preliminary | cancelled
    observed_at: dt.datetime | None
    source: str  # hl7 | fhir


# --- HL7 v2 -------------------------------------------------------------------------------------------------------


def _field(segment, n: int) -> str:
    try:
        return str(segment[n]).strip()
    except (IndexError, KeyError):
        return ""


def _hl7_time(value: str) -> dt.datetime | None:
    digits = value.split("+")[0].split("-")[0].split(".")[0]
    for fmt, size in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        if len(digits) >= size:
            try:
                return dt.datetime.strptime(digits[:size], fmt)
            except ValueError:
                return None
    return None


def parse_oru(message: hl7.Message | str) -> RisReport:
    """An ORU^R01 message as a report; raises ``RisMessageError``."""
    try:
        msg = hl7.parse(message) if isinstance(message, str) else message
        msh = msg.segment("MSH")
    except Exception as exc:
        raise RisMessageError(f"not an HL7 v2 message ({type(exc).__name__})") from exc
    kind = _field(msh, 9)
    if not kind.startswith("ORU"):
        raise RisMessageError(f"not a report message: {kind or 'no message type'} (ORU^R01 expected)")
    try:
        obr = msg.segment("OBR")
    except KeyError as exc:
        raise RisMessageError("no OBR segment") from exc
    orc = next((s for s in msg if str(s[0]) == "ORC"), None)
    accession = next((a for a in (_field(obr, 3).split("^")[0], _field(obr, 18).split("^")[0],
                                  _field(orc, 3).split("^")[0] if orc is not None else "") if a), "")
    if not accession:
        raise RisMessageError("no accession number (OBR-3, OBR-18 or ORC-3)")
    lines = [_field(obx, 5).replace("\\.br\\", "\n") for obx in (s for s in msg if str(s[0]) == "OBX")
             if _field(obx, 2) in TEXT_TYPES]
    text = "\n".join(line for line in lines if line)
    if not text:
        raise RisMessageError(f"report {accession}: no text (OBX-5 of type TX, FT or ST)")
    status = HL7_STATUS.get(_field(obr, 25)[:1].upper(), "final")
    observed = _hl7_time(_field(obr, 22)) or _hl7_time(_field(msh, 7))
    return RisReport(accession[:64], text, status, observed, "hl7")


def split_messages(data: str) -> list[str]:
    """HL7 messages of a file (one after the other, each starting with MSH), segments ending in CR."""
    text = data.replace("\r\n", "\r").replace("\n", "\r")
    parts = [p for p in text.split("\rMSH") if p.strip()]
    return [(p if p.startswith("MSH") else "MSH" + p).strip("\r") for p in parts]


# --- FHIR R4 ------------------------------------------------------------------------------------------------------


def parse_diagnostic_report(resource: dict) -> RisReport:
    """A FHIR R4 DiagnosticReport (JSON) as a report; raises ``RisMessageError``."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    if resource.get("resourceType") != "DiagnosticReport":
        raise RisMessageError(f"not a DiagnosticReport: {resource.get('resourceType') or 'no resourceType'}")
    try:
        report = DiagnosticReport.model_validate(resource)
    except Exception as exc:
        raise RisMessageError(f"not a valid FHIR R4 DiagnosticReport ({type(exc).__name__})") from exc
    identifiers = report.identifier or []
    acsn = [i for i in identifiers if i.type and any(c.code == "ACSN" for c in (i.type.coding or []))]
    chosen = (acsn or identifiers or [None])[0]
    accession = (chosen.value or "").strip() if chosen is not None else ""
    if not accession:
        raise RisMessageError("no accession number (an identifier typed ACSN)")
    parts = [report.conclusion or ""]
    for form in report.presentedForm or []:
        if form.data and (form.contentType or "text/plain").startswith("text/"):
            raw = form.data if isinstance(form.data, bytes) else base64.b64decode(form.data)  # the model decodes
            parts.append(raw.decode("utf-8", errors="replace"))
    text = "\n".join(p.strip() for p in parts if p and p.strip())
    if not text:
        raise RisMessageError(f"report {accession}: no conclusion or text/plain presentedForm")
    issued = report.issued
    observed = issued.replace(tzinfo=None) if isinstance(issued, dt.datetime) else None
    return RisReport(accession[:64], text, FHIR_STATUS.get(report.status or "", "final"), observed, "fhir")


def fhir_reports(data: dict) -> Iterator[RisReport | RisMessageError]:
    """The DiagnosticReports of a resource or a Bundle."""
    if data.get("resourceType") == "Bundle":
        for entry in data.get("entry") or []:
            resource = (entry or {}).get("resource") or {}
            if resource.get("resourceType") == "DiagnosticReport":
                yield _try(parse_diagnostic_report, resource)
        return
    yield _try(parse_diagnostic_report, data)


def _try(parse, item) -> RisReport | RisMessageError:
    try:
        return parse(item)
    except RisMessageError as exc:
        return exc


# --- storing: the newest final version wins, every version is kept ----------------------------------------------


def store(session: Session, report: RisReport) -> bool:
    """Keep this version and make it the current report when it wins; True when it did."""
    current = session.scalar(select(Report).where(Report.accession == report.accession))
    newest_final = session.scalar(select(func.max(ReportVersion.observed_at)).where(
        ReportVersion.accession == report.accession, ReportVersion.status.in_(FINAL), ReportVersion.applied))
    has_final = session.scalar(select(func.count()).select_from(ReportVersion).where(
        ReportVersion.accession == report.accession, ReportVersion.status.in_(FINAL))) or 0
    if report.status == "cancelled":
        wins = False
    elif report.status == "preliminary":
        wins = not has_final
    else:
        wins = current is None or newest_final is None or report.observed_at is None or \
            report.observed_at >= newest_final
    session.add(ReportVersion(accession=report.accession, source=report.source, status=report.status,
                              observed_at=report.observed_at, applied=wins, text=report.text))
    if wins:
        sections = split_sections(report.text)
        row = upsert_report(session, accession=report.accession, text=report.text,
                            impression=extract_impression(report.text), findings=sections.get("findings"),
                            report_date=report.observed_at.date() if report.observed_at else None)
        session.flush()
        store_facts(session, [(row.id, row.text)])
    return wins


@dataclass
class RisImport:
    applied: int = 0
    kept_older: int = 0  # stored as versions only (older, preliminary after final, cancelled)
    rejected: int = 0


def import_reports(db: sessionmaker, items: Iterable[RisReport | RisMessageError], *, ref: str) -> RisImport:
    """Store each report (one transaction each); unreadable ones are recorded as report errors under ``ref``."""
    counts = RisImport()
    for n, item in enumerate(items, start=1):
        with db.begin() as session:
            if isinstance(item, RisMessageError):
                record_error(session, stage="report", kind="bad_ris_message", reason=f"message {n}: {item}",
                             path=f"{ref}#message {n}")
                counts.rejected += 1
            elif store(session, item):
                counts.applied += 1
            else:
                counts.kept_older += 1
    return counts


def import_files(url: str, files: Iterable[Path]) -> RisImport:
    """HL7 message files (anything not ``.json``) and FHIR JSON files."""
    db = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    total = RisImport()
    for path in files:
        decoded = decode_export(Path(path).read_bytes())  # HL7 files are often latin-1 / cp1252
        items: list
        if decoded is None:
            items = [RisMessageError("the file is in no text encoding that could be recognised")]
        elif Path(path).suffix.lower() == ".json":
            try:
                items = list(fhir_reports(json.loads(decoded[0])))
            except (json.JSONDecodeError, AttributeError) as exc:
                items = [RisMessageError(f"not FHIR JSON ({type(exc).__name__})")]
        else:
            items = [_try(parse_oru, m) for m in split_messages(decoded[0])]
        got = import_reports(db, items, ref=Path(path).name)
        total.applied += got.applied
        total.kept_older += got.kept_older
        total.rejected += got.rejected
    return total


# --- the MLLP listener --------------------------------------------------------------------------------------------


class MllpListener:
    """HL7 v2 over MLLP: each ORU^R01 is stored and acknowledged (``AA``; ``AE`` when it cannot be used)."""

    def __init__(self, url: str, *, host: str, port: int):
        self.db = sessionmaker(bind=get_engine(url), expire_on_commit=False)
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hl7-listener", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        log.info("HL7 listener on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Close the server and every open connection, then end the loop's thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                hl7.mllp.start_hl7_server(self._client, host=self.host, port=self.port))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 (reported to start())
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader, writer) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                code = await asyncio.get_running_loop().run_in_executor(None, self.handle, message)
                writer.writemessage(message.create_ack(code))
                await writer.drain()
        except asyncio.IncompleteReadError:  # the sender closed the connection
            pass
        except Exception as exc:  # a broken frame: drop this connection, keep listening
            log.warning("HL7 connection dropped (%s)", type(exc).__name__)
        finally:
            writer.close()

    def handle(self, message: hl7.Message) -> str:
        """Store one message; the ACK code (``AA`` accepted, ``AE`` application error)."""
        item = _try(parse_oru, message)
        got = import_reports(self.db, [item], ref="hl7")
        return "AE" if got.rejected else "AA"
