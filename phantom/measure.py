"""Measurements read back from the phantom's geometry, and the findings derived from them.

Thresholds (documented, used for ground truth):

* lv_dilation: LVEDVi > 100 mL/m²
* lv_systolic_dysfunction: LVEF < 50 %
* lv_hypertrophy: maximal end-diastolic LV wall thickness >= 13 mm (basal to mid short axis)
* rv_dilation: RVEDVi > 110 mL/m²
* rv_systolic_dysfunction: RVEF < 45 %
* lge_present: any scar region
* regional_wall_motion_abnormality: a segment moving less than 70 % of normal
* pericardial_effusion: a fluid rim >= 3 mm
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.anatomy import Heart

THRESHOLDS = {
    "lv_dilation_lvedvi": 100.0,
    "lv_dysfunction_lvef": 50.0,
    "lv_hypertrophy_mm": 13.0,
    "rv_dilation_rvedvi": 110.0,
    "rv_dysfunction_rvef": 45.0,
    "rwma_motion": 0.7,
    "effusion_mm": 3.0,
}
FINDINGS = [
    "lv_dilation",
    "lv_systolic_dysfunction",
    "lv_hypertrophy",
    "rv_dilation",
    "rv_systolic_dysfunction",
    "lge_present",
    "regional_wall_motion_abnormality",
    "pericardial_effusion",
]
MYOCARDIAL_DENSITY = 1.05  # g/mL


@dataclass(frozen=True)
class Measurements:
    lvedv: float
    lvesv: float
    lvef: float
    lvedvi: float
    lv_mass: float
    lv_max_wall_mm: float
    rvedv: float
    rvesv: float
    rvef: float
    rvedvi: float
    effusion_mm: float
    bsa: float


def max_wall_thickness(heart: Heart) -> float:
    """Maximal ED wall thickness (mm) measured perpendicular to the long axis, base to mid cavity."""
    g = heart.phase(0.0)
    theta = np.arange(0, 360, 3.0)
    u = np.linspace(g.ub + 0.08 * heart.apex_u, g.uc + 0.45 * g.le, 40)
    uu, tt = np.meshgrid(u, theta, indexing="ij")
    f = heart._lv_fields(tt, heart._ufrac(uu))
    rn, rp = heart._lv_radii(f, g)
    pn = np.sqrt(np.clip(1 - ((uu - g.uc) / g.le) ** 2, 0, None))
    pe = np.sqrt(np.clip(1 - ((uu - g.uc) / (g.le + g.ta)) ** 2, 0, None))
    return float((rp * pe - rn * pn).max())


def measure(heart: Heart) -> Measurements:
    ed, es = heart.phase(0.0), heart.phase(heart.es_phase)
    edv, epi_ed = heart.lv_volumes(ed)
    esv, _ = heart.lv_volumes(es)
    rvedv, rvesv = heart.rv_volume(ed), heart.rv_volume(es)
    bsa = heart.bsa
    return Measurements(
        lvedv=edv,
        lvesv=esv,
        lvef=100.0 * (edv - esv) / edv,
        lvedvi=edv / bsa,
        lv_mass=(epi_ed - edv) * MYOCARDIAL_DENSITY,
        lv_max_wall_mm=max_wall_thickness(heart),
        rvedv=rvedv,
        rvesv=rvesv,
        rvef=100.0 * (rvedv - rvesv) / rvedv,
        rvedvi=rvedv / bsa,
        effusion_mm=heart.spec.effusion_mm,
        bsa=bsa,
    )


def findings(m: Measurements, heart: Heart) -> dict[str, bool]:
    t = THRESHOLDS
    wm = heart.spec.wall_motion
    return {
        "lv_dilation": m.lvedvi > t["lv_dilation_lvedvi"],
        "lv_systolic_dysfunction": m.lvef < t["lv_dysfunction_lvef"],
        "lv_hypertrophy": m.lv_max_wall_mm >= t["lv_hypertrophy_mm"],
        "rv_dilation": m.rvedvi > t["rv_dilation_rvedvi"],
        "rv_systolic_dysfunction": m.rvef < t["rv_dysfunction_rvef"],
        "lge_present": len(heart.spec.scars) > 0,
        "regional_wall_motion_abnormality": wm is not None and wm.motion < t["rwma_motion"],
        "pericardial_effusion": m.effusion_mm >= t["effusion_mm"],
    }
