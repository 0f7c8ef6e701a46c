"""Case sets back into the PACS: one DICOM Key Object Selection document per study, "For Teaching".

The IHE Teaching File and Clinical Trial Export (TCE) way: a teaching set is a set of KOS instances, each in the
study it points into (a KOS references instances of one study and patient), titled 113004 "For Teaching", with
the case set's name and the case's note as its description. Built with highdicom from the headers of the files the
catalog references (every instance of the study's cine and LGE series); stored to the PACS with STOW-RS
(dicomweb-client, the ``pacs_*`` settings), so the teaching set shows in the PACS viewer's key images. Only the
clinician role may send one: it carries the study's identity, as it must to be filed with the study; researcher
exports stay de-identified (CSV / ZIP).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from pydicom import Dataset
from pydicom.sr.codedict import codes
from sqlalchemy.orm import Session

from catalog import casesets
from catalog.studies import series_frames, study_details

log = logging.getLogger(__name__)

KOS_SERIES_NUMBER = 9901
MANUFACTURER = "CMR case search"


class KosError(ValueError):
    """A case set that cannot be exported as KOS (unknown, empty, files gone); the message says why."""


@dataclass(frozen=True)
class KosDocument:
    study_id: int
    dataset: Dataset
    n_references: int


def _headers(session: Session, study_id: int) -> list[Dataset]:
    headers, seen = [], set()
    for series in series_frames(session, study_id):
        if series.view == "other":
            continue
        for path, *_ in series.frames:
            if path in seen or not Path(path).is_file():
                continue
            seen.add(path)
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
    return headers


def case_set_kos(session: Session, case_set: casesets.CaseSetInfo) -> list[KosDocument]:
    """One KOS per study of the case set, in the set's order; raises ``KosError``."""
    entries = casesets.entries(session, case_set.id)
    if not entries:
        raise KosError(f"case set {case_set.name!r} is empty")
    known = {d.study_id for d in study_details(session, [e.study_id for e in entries])}
    documents = []
    for entry in entries:
        if entry.study_id not in known:
            continue
        headers = _headers(session, entry.study_id)
        if not headers:
            raise KosError(f"the files of study #{entry.study_id} are not readable here: a KOS must reference them")
        description = f"{case_set.name}: {entry.note}" if entry.note else case_set.name
        content = hd.ko.KeyObjectSelection(document_title=codes.DCM.ForTeaching, referenced_objects=headers,
                                           description=description[:1024])
        kos = hd.ko.KeyObjectSelectionDocument(
            evidence=headers, content=content, series_instance_uid=hd.UID(), series_number=KOS_SERIES_NUMBER,
            sop_instance_uid=hd.UID(), instance_number=entry.position + 1, manufacturer=MANUFACTURER,
        )
        documents.append(KosDocument(entry.study_id, kos, len(headers)))
    return documents


def write(documents: list[KosDocument], out_dir: Path) -> list[Path]:
    """Each KOS as a DICOM file ``study-<number>.dcm`` (named by catalog number, not UID)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in documents:
        path = out_dir / f"study-{doc.study_id}.dcm"
        doc.dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def store(documents: list[KosDocument], client) -> int:
    """STOW-RS every KOS (``client``: a dicomweb-client ``DICOMwebClient``); returns how many were stored."""
    if documents:
        client.store_instances([d.dataset for d in documents])
    return len(documents)
