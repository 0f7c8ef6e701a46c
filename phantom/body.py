"""The static torso around the heart: chest wall, lungs, mediastinum, spine, descending aorta, liver."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.tissues import Tissue


@dataclass(frozen=True)
class Body:
    """A supine torso in patient coordinates (LPS, mm); the long axis of the body is z."""

    center: np.ndarray  # (3,) thorax centre at heart level
    half_lr: float  # body half width (x)
    half_ap: float  # body half depth (y)
    subcut_mm: float
    muscle_mm: float
    diaphragm_z: float  # left dome height at the heart; the right dome is higher
    liver_dome_mm: float

    def labels(self, pts: np.ndarray) -> np.ndarray:
        """Tissue label for points ``(..., 3)``."""
        x = pts[..., 0] - self.center[0]
        y = pts[..., 1] - self.center[1]
        z = pts[..., 2]
        out = np.zeros(x.shape, dtype=np.uint8)
        r_body = np.sqrt((x / self.half_lr) ** 2 + (y / self.half_ap) ** 2)
        inner = self.subcut_mm + self.muscle_mm
        r_mus = np.sqrt((x / (self.half_lr - self.subcut_mm)) ** 2 + (y / (self.half_ap - self.subcut_mm)) ** 2)
        r_cav = np.sqrt((x / (self.half_lr - inner)) ** 2 + (y / (self.half_ap - inner)) ** 2)
        out[r_body < 1] = Tissue.SUBCUT_FAT
        out[r_mus < 1] = Tissue.MUSCLE
        cavity = r_cav < 1
        # diaphragm: right dome (negative x) higher than the left
        dome = self.diaphragm_z + self.liver_dome_mm / (1 + np.exp((x + 25.0) / 25.0))
        below = z < dome
        mediastinum = (np.abs(x - 5.0) < 28.0) & (y < self.half_ap - 80.0) & (y > -self.half_ap + 25.0)
        out[cavity & ~below] = Tissue.LUNG
        out[cavity & ~below & mediastinum] = Tissue.MEDIASTINUM
        out[cavity & below] = Tissue.ABDOMEN
        out[cavity & below & (x < 45.0)] = Tissue.LIVER
        # spine, cord and descending aorta (posterior)
        spine_y = self.half_ap - 62.0
        out[(x**2 + (y - spine_y) ** 2) < 17.0**2] = Tissue.BONE
        out[(x**2 + (y - spine_y - 27.0) ** 2) < 7.0**2] = Tissue.CSF
        ao = ((x - 24.0) ** 2 + (y - spine_y + 20.0) ** 2) < 11.5**2
        out[ao & (z > dome - 120.0)] = Tissue.VESSEL_BLOOD
        return out


def make_body(rng: np.random.Generator, heart_center: np.ndarray, heart_low_z: float, sex: str, bmi: float) -> Body:
    """Place a torso so that the heart sits left-anterior in the chest and rests on the diaphragm."""
    fat = float(np.clip(6.0 + (bmi - 20.0) * 1.6 + rng.normal(0, 2), 5, 35))
    half_lr = float(rng.uniform(150, 175) + fat * 0.6 + (8 if sex == "M" else 0))
    half_ap = float(rng.uniform(100, 118) + fat * 0.5)
    center = heart_center - np.array([rng.uniform(28, 42), rng.uniform(-30, -12), 0.0])
    center[2] = heart_center[2]
    return Body(
        center=center,
        half_lr=half_lr,
        half_ap=half_ap,
        subcut_mm=fat,
        muscle_mm=float(rng.uniform(9, 14)),
        diaphragm_z=heart_low_z - float(rng.uniform(3, 8)),
        liver_dome_mm=float(rng.uniform(20, 35)),
    )
