"""Contrast tables, the coil bias field and T1 maps; cine, LGE and localizer images are drawn by phantom.appearance."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from phantom.body import Body
from phantom.tissues import N_TISSUES, Tissue

T = Tissue
# Relative signal per tissue (blood = 1 for bSSFP). T1 maps are in milliseconds at 1.5 T.
CONTRASTS: dict[str, dict[Tissue, float]] = {
    "bssfp": {
        T.AIR: 0.0,
        T.SUBCUT_FAT: 0.85,
        T.MUSCLE: 0.2,
        T.LUNG: 0.035,
        T.LIVER: 0.3,
        T.ABDOMEN: 0.42,
        T.BONE: 0.22,
        T.CSF: 0.95,
        T.MEDIASTINUM: 0.45,
        T.VESSEL_BLOOD: 0.88,
        T.LV_BLOOD: 1.0,
        T.RV_BLOOD: 0.96,
        T.ATRIAL_BLOOD: 0.93,
        T.AORTIC_BLOOD: 0.95,
        T.MYOCARDIUM: 0.19,
        T.SCAR: 0.2,
        T.EPI_FAT: 0.8,
        T.PERICARDIUM: 0.07,
        T.EFFUSION: 0.9,
        T.VESSEL_WALL: 0.16,
        T.STOMACH: 0.6,
    },
    "lge": {
        T.AIR: 0.0,
        T.SUBCUT_FAT: 0.5,
        T.MUSCLE: 0.12,
        T.LUNG: 0.04,
        T.LIVER: 0.28,
        T.ABDOMEN: 0.3,
        T.BONE: 0.15,
        T.CSF: 0.08,
        T.MEDIASTINUM: 0.4,
        T.VESSEL_BLOOD: 0.5,
        T.LV_BLOOD: 0.55,
        T.RV_BLOOD: 0.52,
        T.ATRIAL_BLOOD: 0.5,
        T.AORTIC_BLOOD: 0.5,
        T.MYOCARDIUM: 0.025,
        T.SCAR: 1.0,
        T.EPI_FAT: 0.45,
        T.PERICARDIUM: 0.25,
        T.EFFUSION: 0.1,
        T.VESSEL_WALL: 0.3,
        T.STOMACH: 0.3,
    },
    "t1map": {
        T.AIR: 0.0,
        T.SUBCUT_FAT: 260.0,
        T.MUSCLE: 880.0,
        T.LUNG: 1150.0,
        T.LIVER: 580.0,
        T.ABDOMEN: 900.0,
        T.BONE: 550.0,
        T.CSF: 3500.0,
        T.MEDIASTINUM: 380.0,
        T.VESSEL_BLOOD: 1550.0,
        T.LV_BLOOD: 1560.0,
        T.RV_BLOOD: 1550.0,
        T.ATRIAL_BLOOD: 1550.0,
        T.AORTIC_BLOOD: 1550.0,
        T.MYOCARDIUM: 1000.0,
        T.SCAR: 1330.0,
        T.EPI_FAT: 270.0,
        T.PERICARDIUM: 900.0,
        T.EFFUSION: 2600.0,
        T.VESSEL_WALL: 1000.0,
        T.STOMACH: 1200.0,
    },
    "localizer": {
        T.AIR: 0.0,
        T.SUBCUT_FAT: 0.9,
        T.MUSCLE: 0.3,
        T.LUNG: 0.05,
        T.LIVER: 0.4,
        T.ABDOMEN: 0.5,
        T.BONE: 0.3,
        T.CSF: 0.9,
        T.MEDIASTINUM: 0.7,
        T.VESSEL_BLOOD: 0.7,
        T.LV_BLOOD: 0.75,
        T.RV_BLOOD: 0.75,
        T.ATRIAL_BLOOD: 0.75,
        T.AORTIC_BLOOD: 0.75,
        T.MYOCARDIUM: 0.3,
        T.SCAR: 0.3,
        T.EPI_FAT: 0.85,
        T.PERICARDIUM: 0.1,
        T.EFFUSION: 0.85,
        T.VESSEL_WALL: 0.25,
        T.STOMACH: 0.5,
    },
}
# Changes by condition: amyloid myocardium will not null and the blood pool darkens early; native T1
# rises with amyloid and myocarditis oedema.
CONDITION_CONTRAST: dict[str, dict[str, dict[Tissue, float]]] = {
    "amyloidosis": {
        "lge": {T.MYOCARDIUM: 0.2, T.LV_BLOOD: 0.3, T.RV_BLOOD: 0.28, T.ATRIAL_BLOOD: 0.3, T.SCAR: 0.85},
        "t1map": {T.MYOCARDIUM: 1180.0, T.SCAR: 1260.0},
    },
    "myocarditis": {"t1map": {T.SCAR: 1250.0, T.MYOCARDIUM: 1040.0}},
}
T1_3T_FACTOR = 1.2  # longer T1 at 3 T (roughly, for tissue; fat changes less)


def lookup(contrast: str, conditions: list[str], field_strength: float) -> np.ndarray:
    """Per-label intensity table for a contrast and a case."""
    table = dict(CONTRASTS[contrast])
    for cond in conditions:
        table.update(CONDITION_CONTRAST.get(cond, {}).get(contrast, {}))
    lut = np.zeros(N_TISSUES, dtype=np.float32)
    for tissue, value in table.items():
        lut[tissue] = value
    if contrast == "t1map" and field_strength > 2:
        lut *= T1_3T_FACTOR
    return lut


def bias_field(
    points: np.ndarray, body: Body, heart_center: np.ndarray, strength: float, tilt: np.ndarray
) -> np.ndarray:
    """Smooth receive-coil sensitivity: brighter near the anterior and posterior coil arrays.

    Normalised to 1 at the heart so the blood pool keeps its nominal value.
    """

    def raw(p: np.ndarray) -> np.ndarray:
        y = p[..., 1]
        front = body.center[1] - body.half_ap
        back = body.center[1] + body.half_ap
        b = np.exp(-np.clip(y - front, 0, None) / 90.0) + 0.6 * np.exp(-np.clip(back - y, 0, None) / 90.0)
        b = b + ((p - heart_center) @ tilt) / 400.0
        return 1.0 + strength * b

    return (raw(points) / raw(heart_center[None])[0]).astype(np.float32)


def t1_map(labels: np.ndarray, lut: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fitted T1 map: values in ms, noisy where the fit is poor (lung), zero outside the body."""
    img = gaussian_filter(lut[labels], sigma=(0, 0.7, 0.7), mode="nearest")
    noise = np.where(labels == Tissue.LUNG, 250.0, 22.0).astype(np.float32)
    img = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    img[labels == Tissue.AIR] = 0
    return np.clip(np.rint(img), 0, 4095).astype(np.uint16)
