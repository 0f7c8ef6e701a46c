"""Disease conditions and the target parameters a case is built from.

Targets come from published ranges (UK Biobank normals, ACDC / M&Ms class definitions); anatomy.py turns
them into geometry and measure.py reads the measured values back from that geometry. Ranges are kept clear
of the finding thresholds in measure.py so each class gives the findings it should.

Angles (degrees) are azimuths in the short-axis plane: 0 = septum (towards the RV), 90 = anterior,
180 = lateral, 270 = inferior. Long-axis positions are fractions from base (0) to apex (1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CONDITIONS = [
    "normal",
    "dilated_cardiomyopathy",
    "hypertrophic_cardiomyopathy",
    "prior_infarction",
    "myocarditis",
    "amyloidosis",
    "rv_dilation",
    "pericardial_effusion",
]
SEVERITIES = ["mild", "moderate", "severe"]
# Relative frequency of each primary condition (normal a bit more frequent).
CONDITION_WEIGHTS = {c: (1.6 if c == "normal" else 1.0) for c in CONDITIONS}
# Share of effusion cases that co-occur with another condition.
EFFUSION_COMORBID_PROB = 0.3
# Share of RV dilatation from volume overload (shunt, tricuspid regurgitation): a large RV that still contracts
# well, so RV size does not give RV function away; the rest are pressure-loaded, poorly contracting RVs.
RV_VOLUME_LOAD_PROB = 0.4
RV_VOLUME_LOAD_RVEF = (47.0, 57.0)

NORMAL = {
    "lvedvi": (64, 88),
    "lvef": (57, 69),
    "wall": (7.0, 10.0),
    "rvedvi": (66, 96),
    "rvef": (52, 64),
    "sphericity": (0.50, 0.58),
    "age": (19, 75),
    "hr": (55, 85),
}

# Per condition and severity, the targets that differ from NORMAL.
RANGES: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "normal": {"none": {}},
    "dilated_cardiomyopathy": {
        "mild": {"lvedvi": (108, 122), "lvef": (32, 38), "wall": (6.5, 9.0), "sphericity": (0.62, 0.68)},
        "moderate": {
            "lvedvi": (122, 142),
            "lvef": (24, 32),
            "wall": (6.0, 8.5),
            "sphericity": (0.66, 0.72),
            "rvef": (44, 56),
        },
        "severe": {
            "lvedvi": (145, 185),
            "lvef": (12, 23),
            "wall": (5.5, 8.0),
            "sphericity": (0.70, 0.78),
            "rvef": (30, 42),
            "rvedvi": (85, 110),
        },
        "_all": {"age": (30, 78), "hr": (68, 100)},
    },
    "hypertrophic_cardiomyopathy": {
        "mild": {"septal": (16, 19)},
        "moderate": {"septal": (19, 24)},
        "severe": {"septal": (24, 31)},
        "_all": {"lvedvi": (55, 78), "lvef": (64, 78), "wall": (8.0, 10.5), "age": (16, 65), "hr": (52, 75)},
    },
    "prior_infarction": {
        "mild": {"lvedvi": (72, 92), "lvef": (45, 54), "motion": (0.35, 0.5)},
        "moderate": {"lvedvi": (90, 108), "lvef": (35, 45), "motion": (0.1, 0.25)},
        "severe": {"lvedvi": (108, 135), "lvef": (22, 34), "motion": (-0.1, 0.05)},
        "_all": {"age": (45, 85), "hr": (55, 85)},
    },
    "myocarditis": {
        "mild": {"lvef": (56, 63)},
        "moderate": {"lvef": (50, 57)},
        "severe": {"lvef": (38, 48), "lvedvi": (80, 96)},  # a poorly contracting LV that is not dilated
        "_all": {"age": (17, 50), "hr": (65, 100)},
    },
    "amyloidosis": {  # the wall is not the severity: how thick it is says nothing of how well it contracts
        "mild": {"lvef": (55, 62)},
        "moderate": {"lvef": (40, 47)},
        "severe": {"lvef": (30, 40), "rvef": (36, 43)},
        "_all": {"wall": (14.0, 22.0), "lvedvi": (50, 72), "age": (58, 86), "hr": (60, 90), "sphericity": (0.48, 0.55)},
    },
    "rv_dilation": {
        "mild": {"rvedvi": (115, 128), "rvef": (38, 44)},
        "moderate": {"rvedvi": (128, 150), "rvef": (30, 38)},
        "severe": {"rvedvi": (150, 185), "rvef": (18, 30)},
        "_all": {"age": (20, 75), "hr": (60, 95)},
    },
    "pericardial_effusion": {
        "mild": {"effusion": (4.5, 8.0)},
        "moderate": {"effusion": (8.0, 14.0)},
        "severe": {"effusion": (14.0, 24.0)},
        "_all": {"age": (20, 80), "hr": (65, 105)},
    },
}

TERRITORIES = {
    # name: (azimuth centre, azimuth width, long-axis from, long-axis to)
    "LAD": (55.0, 120.0, 0.3, 1.0),
    "RCA": (295.0, 90.0, 0.0, 0.75),
    "LCx": (195.0, 90.0, 0.0, 0.75),
}


@dataclass(frozen=True)
class Scar:
    """A region of late gadolinium enhancement inside the LV myocardium."""

    azimuth: float  # centre, degrees
    width: float  # angular extent, degrees (>= 360 means all around)
    u_from: float
    u_to: float
    depth_from: float  # wall depth fraction, 0 endocardium .. 1 epicardium
    depth_to: float
    patchy: bool = False


@dataclass(frozen=True)
class WallMotion:
    """A segment whose endocardium moves only ``motion`` times as far as normal (0 = akinetic)."""

    azimuth: float
    width: float
    u_from: float
    u_to: float
    motion: float
    thinning: float = 1.0  # wall thickness factor in the segment (transmural scar thins the wall)


@dataclass
class CaseSpec:
    """What a study should show; the geometry is solved from these targets."""

    conditions: list[str]
    severity: str  # "none" for normal
    age_range: tuple[int, int]
    heart_rate: float
    lvedvi: float
    lvef: float
    wall_mm: float
    septal_mm: float  # basal septum at ED; equals wall_mm unless HCM
    sphericity: float  # short/long semi-axis ratio of the LV cavity at ED
    rvedvi: float
    rvef: float
    rv_wall_mm: float
    effusion_mm: float
    la_scale: float
    scars: list[Scar] = field(default_factory=list)
    wall_motion: WallMotion | None = None
    territory: str | None = None
    lge_pattern: str | None = None  # key into report phrases

    @property
    def primary(self) -> str:
        return self.conditions[0]


def _uniform(rng: np.random.Generator, lohi: tuple[float, float]) -> float:
    return float(rng.uniform(lohi[0], lohi[1]))


def sample_condition(rng: np.random.Generator) -> tuple[list[str], str]:
    """Draw the condition list and severity of a new case."""
    names = list(CONDITION_WEIGHTS)
    weights = np.array([CONDITION_WEIGHTS[c] for c in names])
    primary = str(rng.choice(names, p=weights / weights.sum()))
    if primary == "normal":
        return ["normal"], "none"
    severity = str(rng.choice(SEVERITIES))
    if primary == "pericardial_effusion" and rng.random() < EFFUSION_COMORBID_PROB:
        other = str(rng.choice([c for c in CONDITIONS if c not in ("normal", "pericardial_effusion")]))
        return [other, "pericardial_effusion"], severity
    return [primary], severity


def follow_up_severity(rng: np.random.Generator, severity: str) -> str:
    """Severity at a follow-up study: same, or one step better or worse."""
    if severity == "none":
        return severity
    i = SEVERITIES.index(severity) + int(rng.choice([-1, 0, 0, 1]))
    return SEVERITIES[int(np.clip(i, 0, 2))]


def build_case(rng: np.random.Generator, conditions: list[str], severity: str) -> CaseSpec:
    """Turn a condition list and severity into numeric targets, scars and wall-motion defects."""
    ranges = dict(NORMAL)
    ranges.update({"septal": (0, 0), "effusion": (0, 0), "motion": (1, 1)})
    for cond in conditions:
        table = RANGES[cond]
        ranges.update(table.get("_all", {}))
        ranges.update(table.get(severity, {}))
    # With two conditions the first one's numbers win (the effusion only adds its rim).
    if len(conditions) > 1:
        table = RANGES[conditions[0]]
        ranges.update(table.get("_all", {}))
        ranges.update(table.get(severity, {}))
        ranges["effusion"] = RANGES["pericardial_effusion"][severity]["effusion"]

    wall = _uniform(rng, ranges["wall"])
    septal = _uniform(rng, ranges["septal"]) if "hypertrophic_cardiomyopathy" in conditions else wall
    spec = CaseSpec(
        conditions=list(conditions),
        severity=severity,
        age_range=(int(ranges["age"][0]), int(ranges["age"][1])),
        heart_rate=_uniform(rng, ranges["hr"]),
        lvedvi=_uniform(rng, ranges["lvedvi"]),
        lvef=_uniform(rng, ranges["lvef"]),
        wall_mm=wall,
        septal_mm=septal,
        sphericity=_uniform(rng, ranges["sphericity"]),
        rvedvi=_uniform(rng, ranges["rvedvi"]),
        rvef=_uniform(rng, ranges["rvef"]),
        rv_wall_mm=float(rng.uniform(3.0, 4.0)),
        effusion_mm=_uniform(rng, ranges["effusion"]) if ranges["effusion"][1] > 0 else 0.0,
        la_scale=float(rng.uniform(0.9, 1.1)),
    )
    if "rv_dilation" in conditions and rng.random() < RV_VOLUME_LOAD_PROB:
        spec.rvef = _uniform(rng, RV_VOLUME_LOAD_RVEF)
    _add_lge(rng, spec, ranges)
    if "amyloidosis" in conditions:
        spec.rv_wall_mm = float(rng.uniform(5.5, 7.5))
        spec.la_scale = float(rng.uniform(1.25, 1.45))
        if spec.effusion_mm == 0.0 and rng.random() < 0.4:
            spec.effusion_mm = float(rng.uniform(4.5, 7.5))
            spec.conditions.append("pericardial_effusion")
    if "myocarditis" in conditions and spec.effusion_mm == 0.0 and rng.random() < 0.25:
        spec.effusion_mm = float(rng.uniform(4.5, 7.0))
        spec.conditions.append("pericardial_effusion")
    if "dilated_cardiomyopathy" in conditions:
        spec.la_scale = float(rng.uniform(1.15, 1.4))
    return spec


def _add_lge(rng: np.random.Generator, spec: CaseSpec, ranges: dict[str, tuple[float, float]]) -> None:
    cond, sev = spec.primary, spec.severity
    if cond == "prior_infarction":
        territory = str(rng.choice(list(TERRITORIES)))
        az, width, u0, u1 = TERRITORIES[territory]
        az += float(rng.uniform(-10, 10))
        transmural = sev == "severe" or (sev == "moderate" and rng.random() < 0.5)
        depth = 1.0 if transmural else float(rng.uniform(0.3, 0.55))
        spec.territory = territory
        spec.scars.append(Scar(az, width * 0.85, u0, u1, 0.0, depth))
        spec.wall_motion = WallMotion(
            az, width, u0, u1, _uniform(rng, ranges["motion"]), thinning=0.6 if transmural else 1.0
        )
        spec.lge_pattern = "infarct_transmural" if transmural else "infarct_subendo"
    elif cond == "myocarditis":
        if rng.random() < 0.7:
            az = float(rng.uniform(190, 240))
            width = {"mild": 50.0, "moderate": 80.0, "severe": 120.0}[sev]
            spec.scars.append(Scar(az, width, 0.15, 0.85, 0.6, 1.0, patchy=True))
            spec.lge_pattern = "subepicardial"
        else:
            spec.scars.append(Scar(0.0, 70.0, 0.1, 0.8, 0.3, 0.65, patchy=True))
            spec.lge_pattern = "midwall_septal"
    elif cond == "amyloidosis":
        depth = {"mild": 0.3, "moderate": 0.45, "severe": 0.8}[sev]
        spec.scars.append(Scar(0.0, 360.0, 0.0, 1.0, 0.0, depth))
        spec.lge_pattern = "diffuse_subendo"
    elif cond == "hypertrophic_cardiomyopathy":
        if rng.random() < {"mild": 0.35, "moderate": 0.6, "severe": 0.85}[sev]:
            for az in (60.0, 300.0):
                spec.scars.append(Scar(az, 30.0, 0.05, 0.7, 0.2, 0.8, patchy=True))
            spec.lge_pattern = "insertion_points"
    elif cond == "dilated_cardiomyopathy" and rng.random() < 0.35:
        spec.scars.append(Scar(0.0, 80.0, 0.1, 0.75, 0.35, 0.6))
        spec.lge_pattern = "midwall_septal"
