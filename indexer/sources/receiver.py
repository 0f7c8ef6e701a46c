"""DICOM push: a C-STORE SCP (pynetdicom) that receives studies the way PACS and scanners route them.

Each instance is written durably before success is answered: to a temporary file in the study's folder under
``incoming/``, flushed and fsynced, renamed into place, and the folder fsynced, so an instance the sender was told
is stored survives a crash or a kill of the receiver. A study is complete once no instance of it has arrived for
the quiet time; its files then move to ``studies/<key>/`` and are handed to the same ingest as every other source
(``Ingest`` with a :class:`ReceivedSource`). Completion is read from the files' modification times, so a receiver
restarted after a crash finishes the studies it had. Folder and file names are hashes of the UIDs: nothing on disk
or in the log names a patient.

A duplicate (an instance already held with the same bytes) is answered with success and changes nothing; a
different instance under the same SOP Instance UID (a corrected resend) replaces the held one. Transfer syntaxes
are those ingest can decode (``SUPPORTED_TRANSFER_SYNTAXES``); a presentation context proposing only others is
rejected at association (transfer syntax not supported), as PS3.8 prescribes. Statuses follow PS3.4 Annex B.2.3.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, StoragePresentationContexts, evt

from indexer.sources.folder import FolderSource

log = logging.getLogger(__name__)

# What the ingest's pixel decoders read (pydicom, pylibjpeg-libjpeg / -openjpeg / -rle).
SUPPORTED_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    RLELossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless,
    JPEGLSNearLossless, JPEG2000Lossless, JPEG2000,
]
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (the instance could not be written)
CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand (no study or instance UID)


def key(uid: str) -> str:
    """A file-system name for a UID that does not disclose it."""
    return hashlib.sha1(uid.encode()).hexdigest()[:20]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class InstanceStore:
    """The receiver's files: ``incoming/<study key>/<instance key>.dcm`` until complete, then ``studies/...``."""

    def __init__(self, root: Path, quiet_s: float):
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.studies = self.root / "studies"
        self.quiet_s = quiet_s
        self._lock = threading.Lock()  # a study is not moved while one of its instances is being written
        for folder in (self.incoming, self.studies):
            folder.mkdir(parents=True, exist_ok=True)

    def put(self, study_uid: str, sop_uid: str, data: bytes) -> bool:
        """Write one instance (the DICOM file's bytes) durably; False when the same bytes are already held."""
        name = f"{key(sop_uid)}.dcm"
        with self._lock:
            folder = self.incoming / key(study_uid)
            for held in (folder / name, self.studies / key(study_uid) / name):
                if held.is_file() and held.stat().st_size == len(data) and held.read_bytes() == data:
                    return False
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, folder / name)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(folder)
            return True

    def complete(self, now: float | None = None) -> list[Path]:
        """Move every study quiet for ``quiet_s`` into ``studies/``; returns their folders there."""
        now = time.time() if now is None else now
        done = []
        with self._lock:
            for folder in sorted(p for p in self.incoming.iterdir() if p.is_dir()):
                files = [p for p in folder.iterdir() if p.suffix == ".dcm"]
                for stale in folder.glob(".*.tmp"):  # a write cut off by a crash: never acknowledged
                    stale.unlink(missing_ok=True)
                if not files:
                    folder.rmdir()
                    continue
                if now - max(p.stat().st_mtime for p in files) < self.quiet_s:
                    continue
                target = self.studies / folder.name
                target.mkdir(exist_ok=True)
                for path in files:
                    os.replace(path, target / path.name)
                _fsync_dir(target)
                folder.rmdir()
                _fsync_dir(self.incoming)
                done.append(target)
        return done

    def pending(self) -> int:
        """Studies still receiving (not yet quiet)."""
        return sum(1 for p in self.incoming.iterdir() if p.is_dir())


class ReceivedSource(FolderSource):
    """A study folder the receiver completed, read in place by the ingest (catalog source ``dimse``)."""

    kind = "dimse"

    def __init__(self, root: Path, *, ae_title: str, strict: bool = False):
        super().__init__(root, strict=strict)
        self.ref = f"dimse:{ae_title}"


@dataclass
class _Association:
    caller: str
    address: str
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    studies: set[str] = field(default_factory=set)


class Receiver:
    """The C-STORE SCP and its completion loop; ``on_complete(folders)`` runs in the loop's thread."""

    def __init__(
        self,
        store: InstanceStore,
        *,
        ae_title: str,
        host: str,
        port: int,
        allowed_callers: list[str] | None = None,
        on_complete: Callable[[list[Path]], None] | None = None,
        poll_s: float = 1.0,
    ):
        self.store, self.host, self.port = store, host, port
        self.on_complete, self.poll_s = on_complete, poll_s
        self.ae = AE(ae_title=ae_title)
        for context in StoragePresentationContexts:
            self.ae.add_supported_context(context.abstract_syntax, SUPPORTED_TRANSFER_SYNTAXES)
        if allowed_callers:
            self.ae.require_calling_aet = allowed_callers
        self.ae_title = ae_title
        self._server = None
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._associations: dict[int, _Association] = {}

    def start(self) -> None:
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_ACCEPTED, self._on_accepted),
                    (evt.EVT_RELEASED, self._on_end), (evt.EVT_ABORTED, self._on_end)]
        self._server = self.ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        self._loop = threading.Thread(target=self._completion_loop, name="receiver-completion", daemon=True)
        self._loop.start()
        log.info("DICOM receiver %s listening on %s:%d", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._loop is not None:
            self._loop.join(timeout=30)

    def complete_now(self) -> list[Path]:
        """Complete what is quiet and hand it on (also what the loop does every ``poll_s``)."""
        folders = self.store.complete()
        if folders and self.on_complete is not None:
            self.on_complete(folders)
        return folders

    def _completion_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.complete_now()
            except Exception:  # one failed hand-over must not stop the receiver; the files stay for the next
                log.exception("completing received studies failed; retrying at the next poll")

    # -- handlers: they run in the association's thread -------------------------------------------------------------
    def _on_accepted(self, event) -> None:
        requestor = event.assoc.requestor
        self._associations[id(event.assoc)] = _Association(str(requestor.ae_title).strip(), str(requestor.address))

    def _on_end(self, event) -> None:
        a = self._associations.pop(id(event.assoc), None)
        if a is not None:
            log.info("association from AE %s at %s ended: %d stored, %d duplicates, %d refused, %d studies",
                     a.caller, a.address, a.stored, a.duplicates, a.refused, len(a.studies))

    def _on_store(self, event) -> int:
        a = self._associations.get(id(event.assoc)) or _Association("?", "?")
        try:
            ds = event.dataset
            study_uid, sop_uid = str(ds.StudyInstanceUID), str(event.request.AffectedSOPInstanceUID)
        except Exception:  # a dataset that cannot be decoded, or one without a study UID
            a.refused += 1
            return CANNOT_UNDERSTAND
        try:
            stored = self.store.put(study_uid, sop_uid, event.encoded_dataset(include_meta=True))
        except OSError as exc:  # disk full, permissions: the sender keeps the instance and may retry
            log.error("could not write a received instance (%s)", type(exc).__name__)
            a.refused += 1
            return OUT_OF_RESOURCES
        a.studies.add(key(study_uid))
        if stored:
            a.stored += 1
        else:
            a.duplicates += 1
        return SUCCESS
