"""Cardiac abbreviations spelled out before tokenising, so the pretrained text tower reads words it knows.

Reports write "LV", "RV", "LGE", "EF"; users type "left ventricle" or "LV" as they please. To a general-purpose
WordPiece vocabulary "lv" and "rv" are near-meaningless fragments, and left and right differ by one fragment, so
"dilated RV" and "dilated LV" embed almost alike. Spelling the abbreviations out, the same way for captions,
reports, prompts and queries, gives the tower the words its pretraining knows. A checkpoint records whether its
tower does this (``TextConfig.expand_abbreviations``), so old checkpoints keep their behaviour.
"""

from __future__ import annotations

import re

ABBREVIATIONS: dict[str, str] = {
    "LV": "left ventricular",
    "RV": "right ventricular",
    "LA": "left atrial",
    "RA": "right atrial",
    "LVEF": "left ventricular ejection fraction",
    "RVEF": "right ventricular ejection fraction",
    "LVEDV": "left ventricular end-diastolic volume",
    "RVEDV": "right ventricular end-diastolic volume",
    "LVESV": "left ventricular end-systolic volume",
    "LVEDVi": "indexed left ventricular end-diastolic volume",
    "RVEDVi": "indexed right ventricular end-diastolic volume",
    "EDV": "end-diastolic volume",
    "ESV": "end-systolic volume",
    "EDVi": "indexed end-diastolic volume",
    "EF": "ejection fraction",
    "LGE": "late gadolinium enhancement",
    "LVH": "left ventricular hypertrophy",
    "LVOT": "left ventricular outflow tract",
    "RWMA": "regional wall motion abnormality",
    "HCM": "hypertrophic cardiomyopathy",
    "DCM": "dilated cardiomyopathy",
    "MI": "myocardial infarction",
    "CAD": "coronary artery disease",
    "SAX": "short axis",
}
# Whole tokens only, case-sensitive (so "la" in Spanish text or "ef" inside a word are untouched).
_PATTERN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, ABBREVIATIONS), key=len, reverse=True)) + r")\b")


def expand_abbreviations(text: str) -> str:
    """``"Dilated LV, LVEF 30%"`` -> ``"Dilated left ventricular, left ventricular ejection fraction 30%"``."""
    return _PATTERN.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
