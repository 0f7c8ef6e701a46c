"""The hospital's systems in and out: ``cmr receive`` (DICOM push, HL7 reports over MLLP), ``cmr reports`` (HL7 /
FHIR report files) and ``cmr kos`` (a case set back into the PACS as Key Object Selection documents)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from cmr.common import audit, console, fail, ready_url, settings

log = logging.getLogger(__name__)


def receive(
    port: Annotated[int | None, typer.Option(help="DICOM port (default: settings receiver_port).")] = None,
    ae_title: Annotated[str | None, typer.Option(help="AE title (default: settings receiver_ae_title).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: settings receiver_host).")] = None,
    quiet_s: Annotated[float | None, typer.Option(
        help="Seconds without a new instance after which a study is complete (default: settings).")] = None,
    hl7_port: Annotated[int | None, typer.Option(
        help="Also listen for HL7 v2 ORU^R01 reports over MLLP on this port (0: settings hl7_port).")] = None,
    deidentify: Annotated[bool, typer.Option(help="De-identify studies as they are ingested.")] = False,
) -> None:
    """Receive studies pushed by a PACS or scanner (C-STORE) and ingest each once it is complete; optionally
    receive reports from the RIS (HL7 v2 over MLLP). Runs until interrupted (Ctrl-C or SIGTERM)."""
    from indexer.pipeline import Ingest, deidentifier
    from indexer.sources.receiver import InstanceStore, ReceivedSource, Receiver

    s = settings()
    url = ready_url()
    title = (ae_title or s.receiver_ae_title).strip()
    if not 1 <= len(title) <= 16:
        fail(f"an AE title has 1 to 16 characters, got {title!r}")
    try:
        deid = deidentifier(s) if (deidentify or s.deidentify) else None
    except ValueError as exc:
        fail(str(exc))
    store = InstanceStore(s.received_dir, s.receiver_quiet_s if quiet_s is None else quiet_s)

    def ingest(folders: list[Path]) -> None:
        for folder in folders:
            summary = Ingest(s, ReceivedSource(folder, ae_title=title, strict=s.dicom_strict), deid,
                             db_url=url).run(progress=False)
            scanned = (summary.scan.studies_new + summary.scan.studies_changed) if summary.scan is not None else 0
            log.info("received study ingested: %d studies new or changed, %d preprocessed, %d failed", scanned,
                     summary.preprocessed, summary.preprocess_failed)

    callers = [c.strip() for c in s.receiver_allowed_callers.split(",") if c.strip()]
    receiver = Receiver(store, ae_title=title, host=host or s.receiver_host,
                        port=s.receiver_port if port is None else port, allowed_callers=callers, on_complete=ingest)
    listener = None
    try:
        receiver.start()
        if hl7_port is not None:
            from indexer.ris import MllpListener

            listener = MllpListener(url, host=s.hl7_host, port=hl7_port or s.hl7_port)
            listener.start()
    except OSError as exc:
        receiver.stop()
        fail(f"cannot listen: {exc.strerror or exc}")
    console.print(f"receiving as {title} on {receiver.host}:{receiver.port}"
                  + (f"; HL7 on {listener.host}:{listener.port}" if listener else "") + " (Ctrl-C to stop)")
    receiver.complete_now()  # what a previous run left complete
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        if listener is not None:
            listener.stop()
    console.print(f"stopped; {store.pending()} studies still incomplete (kept for the next run)")


def reports(
    files: Annotated[list[Path], typer.Argument(help="HL7 v2 message files (.hl7) or FHIR JSON (.json).")],
) -> None:
    """Import reports as the RIS sends them: HL7 v2 ORU^R01 messages, or FHIR R4 DiagnosticReport resources (one,
    or a Bundle of them). An amended report replaces the current one when it is newer; every version is kept."""
    from indexer.ris import import_files

    url = ready_url()
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    counts = import_files(url, files)
    console.print(f"reports: {counts.applied} applied, {counts.kept_older} kept as older versions, "
                  f"{counts.rejected} rejected (see `cmr errors`)")


def kos(
    case_set: Annotated[str, typer.Argument(help="The case set's name.")],
    out: Annotated[Path | None, typer.Option(help="Also write the KOS files into this folder.")] = None,
    stow: Annotated[bool, typer.Option(help="Store them to the PACS (STOW-RS to settings pacs_url).")] = True,
    url: Annotated[str | None, typer.Option(help="DICOMweb base URL (default: settings pacs_url).")] = None,
) -> None:
    """Send a case set back into the PACS as teaching files: one Key Object Selection document per study, titled
    "For Teaching" (IHE TCE), stored with STOW-RS. Clinician role only (a KOS carries the study's identity)."""
    from catalog import casesets
    from catalog.db import session_scope
    from indexer.kos import KosError, case_set_kos, store, write
    from indexer.sources.dicomweb import DicomWebSource
    from indexer.sources.dicomweb_config import PacsConfig
    from search import privacy

    s = settings()
    if not privacy.is_clinician(s.role):
        fail("case sets go back to the PACS only from a clinician instance: a KOS carries the study's identity "
             "(researcher exports stay de-identified: CSV or ZIP from the UI)")
    target = url or s.pacs_url
    if stow and not target:
        fail("no PACS: set CMR_PACS_URL (or pass --url), or use --no-stow --out DIR")
    if not stow and out is None:
        fail("nothing to do: give --out DIR, or store to the PACS")
    db_url = ready_url()
    with session_scope(db_url) as session:
        found = casesets.find(session, case_set)
        if found is None:
            fail(f"no case set named {case_set!r}")
        try:
            documents = case_set_kos(session, found)
        except KosError as exc:
            fail(str(exc))
    if out is not None:
        write(documents, out)
    stored = 0
    if stow:
        try:
            stored = store(documents, DicomWebSource(target, PacsConfig.from_settings(s)).client)
        except Exception as exc:  # HTTP errors of the PACS: one line, no traceback
            fail(f"the PACS refused the KOS documents ({type(exc).__name__}: {str(exc)[:200]})")
    audit(db_url, "export", query=f"case set {found.id} as KOS", n_results=len(documents),
          detail=f"cli kos stow={stow} out={'yes' if out else 'no'}")
    console.print(f"{len(documents)} KOS documents ({sum(d.n_references for d in documents)} instances referenced)"
                  + (f", {stored} stored to the PACS" if stow else "") + (f", written to {out}" if out else ""))


def register(app: typer.Typer) -> None:
    app.command("receive")(receive)
    app.command("reports")(reports)
    app.command("kos")(kos)
