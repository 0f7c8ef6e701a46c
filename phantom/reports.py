"""Free-text CMR reports built from the measurements, worded the way radiologists vary."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from phantom import report_phrases as P
from phantom.conditions import CaseSpec
from phantom.measure import Measurements
from phantom.patients import Patient

OMIT_FROM_IMPRESSION = 0.15  # share of abnormal findings that do not make it into the impression
HEDGE_PROB = 0.25
RWMA_NORMAL_PROB = 0.35  # share of reports without a wall motion abnormality that say so
RARE_PROB = 0.12  # share of reports of a fitting case that name a rare diagnosis
ERROR_PROB = 0.05  # share of reports with a planted error or omission (ground truth: report_error)
AMERICAN_PROB = 0.35  # share of reports written in American spelling
# Findings a planted error may touch, and the conditions whose impression wording states that finding anyway.
ERROR_FINDINGS = {
    "lge_present": ("myocarditis",),
    "pericardial_effusion": ("pericardial_effusion",),
    "lv_dilation": (),
    "lv_hypertrophy": ("hypertrophic_cardiomyopathy",),
    "regional_wall_motion_abnormality": (),
    "rv_dilation": ("rv_dilation",),
}


@dataclass(frozen=True)
class WrittenReport:
    """A report and what ground truth records of its wording."""

    text: str
    rare_diagnosis: str = ""  # a rare diagnosis the report names (phantom.report_phrases.RARE_DIAGNOSES)
    report_error: str = ""  # "missed:<finding>" (says normal), "omitted:<finding>" (silent), "overcalled:<finding>"


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


def _sev_values(rng: np.random.Generator, severity: str) -> dict[str, str]:
    sev = _pick(rng, P.SEVERITY_WORDS.get(severity, ["mildly"]))
    size = _pick(rng, P.EFFUSION_SIZE.get(severity, ["Small"]))
    return {"sev": sev, "Sev": sev.capitalize(), "Size": size}


def write_report(*args, **kwargs) -> str:
    """One report's text (see ``write_report_and_truth``)."""
    return write_report_and_truth(*args, **kwargs).text


def _plan_error(rng: np.random.Generator, spec: CaseSpec, found: dict[str, bool]) -> tuple[str, str] | None:
    """A planted error, or None: an abnormal finding reported as normal or left out, or a normal one overcalled."""
    if rng.random() >= ERROR_PROB:
        return None
    abnormal = [
        f for f, protected in ERROR_FINDINGS.items() if found[f] and not set(protected) & set(spec.conditions)
    ]
    if abnormal:
        finding = _pick(rng, abnormal)
        return ("missed" if rng.random() < 0.6 else "omitted"), finding
    normal = [f for f in P.OVERCALLS if not found[f]]
    return ("overcalled", _pick(rng, normal)) if normal else None


def _plan_rare(rng: np.random.Generator, spec: CaseSpec) -> str:
    fitting = [
        name
        for name, (conds, _) in P.RARE_DIAGNOSES.items()
        if set(conds) & set(spec.conditions) and not (name == "takotsubo" and spec.lge_pattern)
    ]
    return _pick(rng, fitting) if fitting and rng.random() < RARE_PROB else ""


def _americanise(text: str) -> str:
    for gb, us in P.AMERICAN.items():
        text = re.sub(rf"\b{gb}", us, text)
    return text


def write_report_and_truth(
    rng: np.random.Generator,
    spec: CaseSpec,
    m: Measurements,
    found: dict[str, bool],
    patient: Patient,
    accession: str,
    study_date: dt.date,
    field_strength: float,
    prior_date: dt.date | None = None,
    prior_severity: str | None = None,
) -> WrittenReport:
    """One report: header with identifiers, indication, technique, findings and impression; a few name a rare
    diagnosis, a few carry a planted error (both recorded in what is returned)."""
    territory = spec.territory or ""
    motion = spec.wall_motion.motion if spec.wall_motion else 1.0
    mkey = "dys" if motion < -0.02 else ("a" if motion < 0.1 else "hypo")
    walls = P.TERRITORY_WALLS.get(territory, "")
    v = {
        "lvedv": f"{m.lvedv:.0f}",
        "lvesv": f"{m.lvesv:.0f}",
        "lvef": f"{m.lvef:.0f}",
        "lvedvi": f"{m.lvedvi:.0f}",
        "mass": f"{m.lv_mass:.0f}",
        "wall": f"{m.lv_max_wall_mm:.0f}",
        "rvedv": f"{m.rvedv:.0f}",
        "rvedvi": f"{m.rvedvi:.0f}",
        "rvef": f"{m.rvef:.0f}",
        "lvef_lo": f"{int(round(m.lvef)) // 5 * 5}",
        "lvef_hi": f"{int(round(m.lvef)) // 5 * 5 + 5}",
        "eff": f"{m.effusion_mm:.0f}",
        "territory": territory,
        "walls": walls,
        "walls_cap": walls.capitalize(),
        "Motion": P.MOTION_WORDS[mkey][0],
        "motion_l": P.MOTION_WORDS[mkey][1],
        "family": patient.family,
        "given": patient.given,
        "family_cap": patient.family.title(),
        "given_cap": patient.given.title(),
        "mrn": patient.patient_id,
        "acc": accession,
        "date": study_date.isoformat(),
        "date_eu": study_date.strftime("%d/%m/%Y"),
        "dob": patient.birth_date.strftime("%d.%m.%Y"),
        "field": f"{field_strength:.1f}",
        "lge_delay": str(int(rng.integers(8, 16))),
        "dose": _pick(rng, ["0.1", "0.15", "0.2"]),
    }
    v.update(_sev_values(rng, spec.severity))
    primary = spec.primary
    ph = P.FINDING_PHRASES
    error = _plan_error(rng, spec, found)
    rare = _plan_rare(rng, spec)
    said = dict(found)  # what the report states of each finding
    if error:
        said[error[1]] = error[0] == "overcalled"

    # findings, each a (sentence, is_abnormal, key) triple
    items: list[tuple[str, bool, str]] = []
    if said["lv_dilation"] and error == ("overcalled", "lv_dilation"):
        items.append((_pick(rng, P.OVERCALLS["lv_dilation"]), True, "lv_dilation"))
    else:
        items.append((_pick(rng, ph["lv_size"][said["lv_dilation"]]), said["lv_dilation"], "lv_dilation"))
    if found["lv_systolic_dysfunction"]:
        items.append((_pick(rng, ph["lv_function"][True]), True, "lv_systolic_dysfunction"))
    elif m.lvef > 72:
        items.append((_pick(rng, ph["lv_function"]["hyper"]), False, "lvef"))
    else:
        items.append((_pick(rng, ph["lv_function"][False]), False, "lvef"))
    if said["lv_hypertrophy"]:
        kind = "asymmetric" if "hypertrophic_cardiomyopathy" in spec.conditions else "concentric"
        items.append((_pick(rng, ph["lv_wall"][kind]), True, "lv_hypertrophy"))
    else:
        items.append((_pick(rng, ph["lv_wall"][False]), False, "lv_hypertrophy"))
    if said["regional_wall_motion_abnormality"]:
        items.append((_pick(rng, ph["rwma"][True]), True, "regional_wall_motion_abnormality"))
    elif rng.random() < RWMA_NORMAL_PROB or error == ("missed", "regional_wall_motion_abnormality"):
        items.append((_pick(rng, ph["rwma"][False]), False, "regional_wall_motion_abnormality"))
    rv_parts = []
    if said["rv_dilation"]:
        rv_parts.append(_pick(rng, ph["rv"]["dilated"]))
    if found["rv_systolic_dysfunction"]:
        rv_parts.append(_pick(rng, ph["rv"]["impaired"]))
    elif said["rv_dilation"]:  # a volume-loaded RV: say that it still contracts
        rv_parts.append(_pick(rng, ph["rv"]["preserved"]))
    if rv_parts:
        items.append((" ".join(rv_parts), True, "rv"))
    elif found["rv_dilation"]:  # a missed RV dilatation with normal RV function
        items.append((_pick(rng, ["The RV is not dilated.", "Normal RV size."]), False, "rv_dilation"))
    else:
        items.append((_pick(rng, ph["rv"][False]), False, "rv"))
    if error == ("overcalled", "lge_present"):
        items.append((_pick(rng, P.OVERCALLS["lge_present"]), True, "lge_present"))
    elif spec.lge_pattern and said["lge_present"]:
        items.append((_pick(rng, ph["lge"][spec.lge_pattern]), True, "lge_present"))
    else:
        items.append((_pick(rng, ph["lge"][False]), False, "lge_present"))
    if error == ("overcalled", "pericardial_effusion"):
        items.append((_pick(rng, P.OVERCALLS["pericardial_effusion"]), True, "pericardial_effusion"))
    else:
        items.append(
            (
                _pick(rng, ph["effusion"][said["pericardial_effusion"]]),
                said["pericardial_effusion"],
                "pericardial_effusion",
            )
        )
    if error and error[0] == "omitted":
        items = [it for it in items if it[2] != error[1]]

    findings_text = [_fill(s, v) for s, _, _ in items]
    measure_line = _fill(_pick(rng, P.MEASURE_LINES), v) + " " + _fill(_pick(rng, P.RV_MEASURE_LINES), v)
    findings_text.insert(int(rng.integers(0, 3)), measure_line)
    if rng.random() < 0.3:
        findings_text.append(_pick(rng, P.INCIDENTALS))
    if prior_date is not None:
        change = (
            "same"
            if prior_severity == spec.severity
            else ("better" if _rank(spec.severity) < _rank(prior_severity) else "worse")
        )
        findings_text.append(
            _fill(_pick(rng, P.COMPARISONS), {"prior": prior_date.isoformat(), "change": _pick(rng, P.CHANGES[change])})
        )

    impression = _impression(rng, spec, items, v)
    if rare:
        impression.append(_pick(rng, P.RARE_DIAGNOSES[rare][1]))
    h = {k: _pick(rng, opts) for k, opts in P.HEADINGS.items()}
    indication = _pick(rng, P.INDICATIONS[primary])
    technique = _fill(_pick(rng, P.TECHNIQUE), v)
    inline = rng.random() < 0.5
    sep = " " if inline else "\n"
    lines = [
        _fill(_pick(rng, P.HEADER_LINES), v),
        "",
        f"{h['indication']} {indication}",
        f"{h['technique']} {technique}",
        "",
        f"{h['findings']}{sep}" + (" " if inline else "\n").join(findings_text),
        "",
        f"{h['impression']}\n" + "\n".join(impression),
    ]
    text = "\n".join(lines)
    if rng.random() < AMERICAN_PROB:
        text = _americanise(text)
    return WrittenReport(text, rare, f"{error[0]}:{error[1]}" if error else "")


def _rank(severity: str | None) -> int:
    return {"none": 0, "mild": 1, "moderate": 2, "severe": 3}.get(severity or "none", 0)


def _impression(
    rng: np.random.Generator, spec: CaseSpec, items: list[tuple[str, bool, str]], v: dict[str, str]
) -> list[str]:
    """Diagnosis first (sometimes hedged), then key abnormal findings; some findings are left out."""
    out: list[str] = []
    for cond in spec.conditions:
        if cond in P.HEDGED_DIAGNOSES and rng.random() < HEDGE_PROB:
            hedge = _pick(rng, P.HEDGES)
            text = _fill(P.HEDGED_DIAGNOSES[cond], {**v, "hedge": hedge})
            out.append(text[0].upper() + text[1:] + ".")
        else:
            out.append(_fill(_pick(rng, P.DIAGNOSES[cond]), v))
    abnormal = [s for s, bad, _ in items if bad]
    kept = [s for s in abnormal if rng.random() >= OMIT_FROM_IMPRESSION]
    if spec.primary != "normal" and rng.random() < 0.1 and kept:
        out = []  # the diagnosis is sometimes not named, only the findings
    out.extend(_fill(s, v) for s in kept)
    if not out:
        out = [_fill(_pick(rng, P.DIAGNOSES[spec.primary]), v)]
    if len(out) > 1 and rng.random() < 0.6:
        return [f"{i + 1}. {s}" for i, s in enumerate(out)]
    return out
