"""Classify a series' view from its description and its geometry.

Names first (a table of patterns, as data), geometry second: a series whose name the table does not know is
placed by its plane relative to the study's long axis. Long-axis subtypes (2/3/4-chamber) are told apart by the
angle of the plane around the long axis; the reference angles are calibrated from the archive's own
confidently named series, so a site whose naming the rules never saw still lands right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# (pattern, label): checked in order on the lower-cased description with separators as spaces.
OTHER_PATTERNS = [
    r"\blocali[sz]er\b", r"\bsurvey\b", r"scout", r"t1 ?map", r"\bmolli\b", r"\bshmolli\b", r"smart ?1",
    r"\bt2 ?map", r"\bt2\b", r"\bflow\b", r"\bphase contrast\b", r"\bpc\b", r"\bperf", r"\btrig\b",
    r"\bhaste\b", r"\bmap\b", r"\blook ?locker\b", r"\bcalibration\b", r"\baxial\b", r"\btra\b", r"\bcor\b",
]  # fmt: skip
LGE_PATTERNS = [r"\bpsir\b", r"\bde\b", r"\bmde\b", r"\blge\b", r"\bdelayed\b", r"\blate\b", r"\bir\b", r"\bpsir"]
PLANE_PATTERNS = [
    ("sax", r"\b(sax|sa|short ?axis|sht ax|short)\b"),
    ("2ch", r"\b(2 ?k|2 ?ch|2 ?cv|two ?chamber|2 ?chamber|vla)\b"),
    ("3ch", r"\b(3 ?k|3 ?ch|3 ?cv|three ?chamber|3 ?chamber|lvot)\b"),
    ("4ch", r"\b(4 ?k|4 ?ch|4 ?cv|four ?chamber|4 ?chamber|hla)\b"),
    ("lax", r"\b(lax|la|long ?axis)\b"),
]
LAX_VIEWS = ("2ch", "3ch", "4ch")
# Fallback angles (degrees, mod 180) of long-axis plane normals around the long axis, measured from the
# projection of the patient's superior axis; replaced by calibration from named series when available.
DEFAULT_LAX_ANGLES = {"4ch": 175.0, "2ch": 68.0, "3ch": 112.0}
# Towards the apex in patient (LPS) coordinates: left, anterior, inferior.
APEX_PRIOR = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)
# Below this |normal . APEX_PRIOR| the stack normal's sign says little about where the apex is (a stack tilted
# far from the usual double oblique, or a wrong orientation header): the images decide (clips.heart.apex_sign).
APEX_PRIOR_CONFIDENT = 0.3
# Fewest phases that make a cine: research exports often keep only end-diastole and end-systole.
MIN_CINE_PHASES = 2


def _normalise_name(text: str) -> str:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text or "")
    text = text.lower()
    text = re.sub(r"(\d)(ch|cv)", r"\1 \2", text)
    return re.sub(r"[_\-\.\(\)\[\]/,+]+", " ", text)


@dataclass
class NameHint:
    plane: str | None  # sax | 2ch | 3ch | 4ch | lax | None
    lge: bool
    other: bool


def name_hint(description: str) -> NameHint:
    name = _normalise_name(description)
    other = any(re.search(p, name) for p in OTHER_PATTERNS)
    lge = any(re.search(p, name) for p in LGE_PATTERNS)
    plane = next((label for label, p in PLANE_PATTERNS if re.search(p, name)), None)
    return NameHint(plane=plane, lge=lge, other=other and not lge)


@dataclass
class SeriesGeometry:
    """What classification needs to know of a series."""

    key: str
    description: str
    normal: np.ndarray | None
    n_slices: int
    n_phases: int
    has_inversion: bool = False


@dataclass
class ViewDecision:
    view: str
    basis: str


@dataclass
class AngleCalibration:
    """Reference angles of long-axis views, learnt from named series of the archive being scanned."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {v: [] for v in LAX_VIEWS})

    def add(self, view: str, angle: float) -> None:
        self.samples[view].append(angle)

    def reference(self) -> dict[str, float]:
        refs = dict(DEFAULT_LAX_ANGLES)
        for view, angles in self.samples.items():
            if len(angles) >= 2:
                doubled = np.deg2rad(np.array(angles) * 2.0)
                mean = np.rad2deg(np.arctan2(np.sin(doubled).mean(), np.cos(doubled).mean())) / 2.0
                refs[view] = float(mean % 180.0)
        return refs


def _angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def oriented_axis(normal: np.ndarray) -> np.ndarray:
    """The long axis direction, signed to point towards the apex."""
    return normal if float(normal @ APEX_PRIOR) >= 0 else -normal


def lax_angle(normal: np.ndarray, axis: np.ndarray) -> float:
    """Angle (degrees, mod 180) of a long-axis plane's normal around the long axis."""
    e = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
    if np.linalg.norm(e) < 1e-6:
        e = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
    e /= np.linalg.norm(e)
    f = np.cross(axis, e)
    m = normal - (normal @ axis) * axis
    return float(np.rad2deg(np.arctan2(m @ f, m @ e)) % 180.0)


def _is_axis_aligned(normal: np.ndarray) -> bool:
    return float(np.max(np.abs(normal))) > 0.985


def study_long_axis(series: list[SeriesGeometry]) -> np.ndarray | None:
    """The LV long axis of a study: the normal of its short-axis cine stack, else the crossing of two
    long-axis cine planes."""
    stacks = [s for s in series if s.normal is not None and s.n_slices >= 4 and _is_cine(s)]
    named_sax = [s for s in stacks if name_hint(s.description).plane == "sax"] or stacks
    if named_sax:
        best = max(named_sax, key=lambda s: (s.n_slices, s.n_phases))
        return oriented_axis(best.normal)
    # a stack stored one series per slice: four or more parallel single-slice cines
    singles = [s for s in series if s.normal is not None and s.n_slices == 1 and s.n_phases >= 8]
    for s in singles:
        parallel = [t for t in singles if abs(float(t.normal @ s.normal)) > 0.99]
        if len(parallel) >= 4:
            return oriented_axis(s.normal)
    lax = [
        s
        for s in series
        if s.normal is not None and s.n_slices == 1 and s.n_phases >= 8 and not _is_axis_aligned(s.normal)
    ]
    for i in range(len(lax)):
        for j in range(i + 1, len(lax)):
            axis = np.cross(lax[i].normal, lax[j].normal)
            if np.linalg.norm(axis) > 0.5:
                return oriented_axis(axis / np.linalg.norm(axis))
    return None


def _is_cine(s: SeriesGeometry) -> bool:
    """Four or more phases, or a short cine (ED and ES, as research exports hold) without an inversion time."""
    return s.n_phases >= 4 or (s.n_phases >= MIN_CINE_PHASES and not s.has_inversion)


def classify(s: SeriesGeometry, axis: np.ndarray | None, refs: dict[str, float] | None = None) -> ViewDecision:
    """Decide the view of one series. ``axis`` is the study's long axis (or None when unknown)."""
    hint = name_hint(s.description)
    cine = _is_cine(s)
    if hint.other:
        return ViewDecision("other", "name")
    lge = hint.lge or (not cine and s.has_inversion)
    if s.normal is None:
        if hint.plane in ("sax", *LAX_VIEWS):
            return ViewDecision(_label(hint.plane, lge), "name")
        return ViewDecision("other", "geometry")

    # Geometry: where is the plane relative to the long axis?
    plane_geo: str | None = None
    if axis is not None:
        along = abs(float(s.normal @ axis))
        if along > 0.8:
            plane_geo = "sax"
        elif along < 0.5:
            angle = lax_angle(s.normal, axis)
            refs = refs or DEFAULT_LAX_ANGLES
            plane_geo = min(refs, key=lambda v: _angle_diff(angle, refs[v]))
    elif s.n_slices >= 4 and cine:
        plane_geo = "sax"

    if hint.plane in ("sax", *LAX_VIEWS):
        basis = "name+geometry" if plane_geo == hint.plane else "name"
        return ViewDecision(_label(hint.plane, lge), basis)
    if hint.plane == "lax" and plane_geo in LAX_VIEWS:
        return ViewDecision(_label(plane_geo, lge), "name+geometry")
    if plane_geo is None or (not cine and not lge and _is_axis_aligned(s.normal)):
        return ViewDecision("other", "geometry")
    if not cine and not lge:
        # A single-phase image in a cardiac plane with no name and no inversion time: most likely LGE only if the
        # plane is cardiac (not axis aligned); localizers are axis-aligned and handled above.
        lge = True
    return ViewDecision(_label(plane_geo, lge), "geometry")


def _label(plane: str, lge: bool) -> str:
    if not lge:
        return plane if plane in ("sax", *LAX_VIEWS) else "other"
    return "lge_sax" if plane == "sax" else "lge_lax"


def calibrate(studies: list[list[SeriesGeometry]]) -> AngleCalibration:
    """Collect the angles of confidently named long-axis cines over the archive."""
    cal = AngleCalibration()
    for series in studies:
        axis = study_long_axis(series)
        if axis is None:
            continue
        for s in series:
            hint = name_hint(s.description)
            if s.normal is None or hint.other or hint.plane not in LAX_VIEWS:
                continue
            if abs(float(s.normal @ axis)) < 0.5:
                cal.add(hint.plane, lax_angle(s.normal, axis))
    return cal


def assign_study_lax(
    series: list[SeriesGeometry], decisions: dict[str, ViewDecision], axis: np.ndarray | None, refs: dict[str, float]
) -> dict[str, ViewDecision]:
    """Within one study, long-axis cines placed by geometry alone get distinct views where possible.

    A study rarely holds two 2-chamber cines and no 3-chamber one; when geometry put two unnamed cines on the
    same view, the assignment with the smallest total angle error over the views not already named is used.
    """
    from itertools import permutations

    if axis is None:
        return decisions
    unnamed = [
        s
        for s in series
        if decisions[s.key].basis == "geometry" and decisions[s.key].view in LAX_VIEWS and s.normal is not None
    ]
    if len(unnamed) < 2:
        return decisions
    named = {d.view for k, d in decisions.items() if d.basis != "geometry"}
    free = [v for v in LAX_VIEWS if v not in named]
    if len(free) < len(unnamed):
        return decisions
    angles = [lax_angle(s.normal, axis) for s in unnamed]
    best = min(
        permutations(free, len(unnamed)),
        key=lambda views: sum(_angle_diff(a, refs[v]) for a, v in zip(angles, views, strict=True)),
    )
    out = dict(decisions)
    for s, view in zip(unnamed, best, strict=True):
        out[s.key] = ViewDecision(view, "geometry")
    return out
