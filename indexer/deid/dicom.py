"""De-identification of DICOM instances: PS3.15 Annex E Basic Profile with Retain Patient Characteristics.

The profile is data (``profile.json``: attribute keyword → action), applied by one walker; options add their
actions on top of the basic ones. Replacements are keyed HMACs of the originals with a site secret, so the same
input always gives the same output: a study re-ingested maps to the same pseudonymous UIDs, patient ids and
accessions, and its report still links to it. Dates are shifted by a per-patient offset derived from the secret
(intervals between a patient's studies survive), or cut to the year.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from cmrclip.language.scrub import KnownIdentifiers, deidentify_report
from indexer.dicom.headers import parse_date

if TYPE_CHECKING:
    from catalog.settings import Settings

PROFILE_PATH = Path(__file__).with_name("profile.json")
METHOD = "CMR-RETRIEVAL DEID 1 (PS3.15 E.1 Basic Profile + options)"
MAX_SHIFT_DAYS = 3650  # dates move back between 1 and this many days, per patient
# Where the names of people other than the patient are written (their names are scrubbed from text too).
OTHER_NAME_KEYWORDS = (
    "ReferringPhysicianName", "OperatorsName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord", "RequestingPhysician",
)  # fmt: skip
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "CS"}

DateMode = Literal["shift", "year"]


@dataclass(frozen=True)
class DeidConfig:
    """How studies are de-identified (from the settings ``deid_secret``, ``deid_date_mode``, ``deid_keep_mapping``)."""

    secret: str
    date_mode: DateMode = "shift"
    keep_mapping: bool = False  # keep pseudonym → identity links (a table only clinicians may read)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError(
                "de-identification needs a secret (set CMR_DEID_SECRET): without one, pseudonyms of short ids "
                "such as MRNs could be reversed by trying every value"
            )
        if self.date_mode not in ("shift", "year"):
            raise ValueError(f"deid_date_mode must be 'shift' or 'year', not {self.date_mode!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeidConfig:
        return cls(
            secret=settings.deid_secret, date_mode=settings.deid_date_mode, keep_mapping=settings.deid_keep_mapping
        )


@lru_cache(maxsize=1)
def load_profile(path: Path = PROFILE_PATH) -> dict:
    return json.loads(Path(path).read_text())


def resolved_actions(profile: dict) -> dict[str, str]:
    """Keyword → action after every option in the profile has been applied over the basic table."""
    actions = dict(profile["actions"])
    for option in profile["options"].values():
        actions.update(option["actions"])
    return actions


class Pseudonyms:
    """Keyed, deterministic replacements: the same secret and original always give the same pseudonym."""

    def __init__(self, secret: str, profile: dict):
        self._key = secret.encode()
        self._formats = profile["pseudonyms"]

    def digest(self, namespace: str, value: str) -> bytes:
        return hmac.new(self._key, f"{namespace}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A '2.25.<int>' UID (PS3.5 B.2) from the first 128 bits of the HMAC of the original."""
        return f"2.25.{int.from_bytes(self.digest('uid', original)[:16], 'big')}"

    def value(self, keyword: str, original: str) -> str:
        """The pseudonym of an identifier (PatientID, AccessionNumber, InstitutionName: see the profile)."""
        fmt = self._formats[keyword]
        return fmt["prefix"] + self.digest(keyword, original).hex()[: fmt["length"] - len(fmt["prefix"])].upper()

    def shift_days(self, patient_id: str) -> int:
        """The patient's date offset: the same for all of a patient's studies, so intervals survive."""
        return -(1 + int.from_bytes(self.digest("date", patient_id)[:4], "big") % MAX_SHIFT_DAYS)


class Deidentifier:
    """Applies the profile to datasets and tells which identifiers a study's text must lose."""

    def __init__(self, config: DeidConfig, profile: dict | None = None):
        self.config = config
        self.profile = profile or load_profile()
        self.actions = resolved_actions(self.profile)
        self.pseudonyms = Pseudonyms(config.secret, self.profile)
        self._keep_uids = tuple(self.profile["keep_uid_prefixes"])
        self._remove_groups = [(int(lo, 16), int(hi, 16)) for lo, hi in self.profile["remove_group_ranges"]]
        self._cleaned: dict[tuple, str] = {}  # descriptions repeat in every instance of a series

    def clean_text(self, text: str, identity: dict[str, Any]) -> str:
        key = (text, tuple(sorted((k, str(v)) for k, v in identity.items())))
        if key not in self._cleaned:
            if len(self._cleaned) > 50_000:
                self._cleaned.clear()
            self._cleaned[key] = deidentify_report(text, self.known(identity))
        return self._cleaned[key]

    @property
    def fingerprint(self) -> str:
        """Changes with the secret, the date mode and the profile; reveals none of them."""
        profile = json.dumps(self.profile, sort_keys=True)
        return self.pseudonyms.digest("config", f"{self.config.date_mode}|{METHOD}|{profile}").hex()[:16]

    # -- identity -----------------------------------------------------------------------------------------------
    def uid(self, original: str) -> str:
        return original if original.startswith(self._keep_uids) else self.pseudonyms.uid(original)

    def date_rule(self, patient_id: str) -> Any:
        """date → modified date of one patient (shifted, or the 1st of January of its year)."""
        if self.config.date_mode == "year":
            return lambda day: day.replace(month=1, day=1)
        offset = dt.timedelta(days=self.pseudonyms.shift_days(patient_id))
        return lambda day: day + offset

    def known(self, identity: dict[str, Any]) -> KnownIdentifiers:
        """Identifiers of one study (``patient_id``, ``accession``, ``patient_name``, ``other_names``,
        ``birth_date``), with what each becomes, for :func:`deidentify_report`."""
        pid, acc = identity.get("patient_id") or "", identity.get("accession") or ""
        rule = self.date_rule(pid)
        fmt = (lambda d: str(rule(d).year)) if self.config.date_mode == "year" else (lambda d: rule(d).isoformat())
        ids = {}
        if pid:
            ids[pid] = self.pseudonyms.value("PatientID", pid)
        if acc:
            ids[acc] = self.pseudonyms.value("AccessionNumber", acc)
        names = [identity.get("patient_name") or "", *(identity.get("other_names") or [])]
        return KnownIdentifiers(
            names=[n for n in names if n],
            ids=ids,
            birth_date=parse_date(identity.get("birth_date")),
            date=fmt,
        )

    # -- datasets -----------------------------------------------------------------------------------------------
    def apply(self, ds: Dataset) -> Dataset:
        """De-identify one instance in place (file meta included) and return it."""
        identity = identity_of(ds)
        _fill_age(ds)
        ctx = _Context(self, identity)
        self._walk(ds, ctx)
        if getattr(ds, "file_meta", None) is not None:
            self._walk(ds.file_meta, ctx)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
        ds.DeidentificationMethodCodeSequence = Sequence(
            [_code(self.profile["profile"])] + [_code(o) for o in self.profile["options"].values()]
        )
        return ds

    def _walk(self, ds: Dataset, ctx: _Context) -> None:
        for elem in list(ds):
            tag = elem.tag
            if tag.is_private:
                action = self.profile["private_tags"]
            elif any(lo <= tag.group <= hi for lo, hi in self._remove_groups):
                action = "X"
            else:
                action = self.actions.get(elem.keyword) or self.profile["by_vr"].get(elem.VR, "K")
            if action == "X":
                del ds[tag]
            elif action == "Z":
                elem.value = Sequence() if elem.VR == "SQ" else ""
            elif action == "D":
                elem.value = Sequence() if elem.VR == "SQ" else self.profile["dummy_by_vr"].get(elem.VR, "")
            elif action == "U":
                elem.value = _map_values(elem.value, self.uid)
            elif action == "P":
                elem.value = _map_values(elem.value, lambda v, k=elem.keyword: self.pseudonyms.value(k, v))
            elif action == "C":
                elem.value = ctx.clean(elem.VR, elem.value)
            if action in ("K", "C", "U") and elem.VR == "SQ" and tag in ds:
                for item in ds[tag].value:
                    self._walk(item, ctx)


class _Context:
    """Per-instance state of a walk: the patient's date rule and the identifiers text must lose."""

    def __init__(self, deid: Deidentifier, identity: dict[str, Any]):
        self.deid = deid
        self.identity = identity
        self.rule = deid.date_rule(identity.get("patient_id") or "")

    def clean(self, vr: str, value: Any) -> Any:
        if vr == "DA":
            return _map_values(value, self._date)
        if vr == "DT":
            return _map_values(value, lambda v: self._date(v[:8]) + v[8:] if len(v) >= 8 else "")
        if vr in TEXT_VRS:
            return _map_values(value, lambda v: self.deid.clean_text(v, self.identity))
        return value  # times and numbers carry no identity once the dates have moved

    def _date(self, value: str) -> str:
        day = parse_date(value)
        return self.rule(day).strftime("%Y%m%d") if day else ""


def identity_of(ds: Dataset) -> dict[str, Any]:
    """The identifiers of an instance's patient and study, read before they are removed (never logged)."""
    other_names = sorted({str(ds.get(k, "") or "") for k in OTHER_NAME_KEYWORDS} - {""})
    return {
        "patient_id": str(ds.get("PatientID", "") or ""),
        "patient_name": str(ds.get("PatientName", "") or ""),
        "birth_date": str(ds.get("PatientBirthDate", "") or ""),
        "accession": str(ds.get("AccessionNumber", "") or ""),
        "other_names": other_names,
    }


def _fill_age(ds: Dataset) -> None:
    """PatientAge from birth and study date when the header lacks it: the age must outlive the birth date."""
    if str(ds.get("PatientAge", "") or "").strip():
        return
    birth, day = parse_date(ds.get("PatientBirthDate")), parse_date(ds.get("StudyDate"))
    if birth and day and day >= birth:
        years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
        ds.PatientAge = f"{years:03d}Y"


def _map_values(value: Any, fn: Any) -> Any:
    """Apply fn to a single value or to every value of a multi-valued element; empty stays empty."""
    if value is None or value == "":
        return value
    if isinstance(value, list | tuple | MultiValue):
        return [fn(str(v)) for v in value]
    return fn(str(value))


def _code(entry: dict) -> Dataset:
    item = Dataset()
    item.CodeValue = entry["code"]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = entry["meaning"]
    return item
