"""The static torso around the heart: chest wall with ribs, lungs, mediastinum, spine, descending aorta, liver, stomach.

No boundary is a plain ellipse or polygon: each outline has a few random low-order harmonics (``shape``), the
diaphragm domes in both directions, and the mediastinum is a rounded, lumpy fat-and-vessel region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    shape: np.ndarray = field(default_factory=lambda: np.zeros((6, 4)))  # harmonics: rows body, cavity, medi., dome
    stomach: np.ndarray = field(default_factory=lambda: np.array([80.0, 0.0, -60.0, 0.0, 0.0, 0.0]))  # c, radii
    rib_phase: float = 0.0

    def _wobble(self, z: np.ndarray, row: int) -> np.ndarray:
        """1 + a smooth random outline perturbation: harmonics k = 2..7 of ``shape[:, row]``, where ``z`` is
        the unit complex number of the polar angle (cos k theta from powers of z: no trigonometry per pixel)."""
        out = np.ones(z.shape, dtype=np.float32)
        zk = z * z
        for k in range(self.shape.shape[0]):
            ph = 1.7 * k * row + row
            a = self.shape[k, row]
            out += (a * np.cos(ph)) * zk.real - (a * np.sin(ph)) * zk.imag
            zk = zk * z
        return out

    def labels(self, pts: np.ndarray) -> np.ndarray:
        """Tissue label for points ``(..., 3)``."""
        x = pts[..., 0] - self.center[0]
        y = pts[..., 1] - self.center[1]
        z = pts[..., 2]
        out = np.zeros(x.shape, dtype=np.uint8)
        z_ang = (x + 1j * y).astype(np.complex64)
        z_ang /= np.abs(z_ang) + 1e-6
        w_body, w_cav = self._wobble(z_ang, 0), self._wobble(z_ang, 1)
        r_body = np.sqrt((x / self.half_lr) ** 2 + (y / self.half_ap) ** 2) / w_body
        inner = self.subcut_mm + self.muscle_mm
        r_mus = np.sqrt((x / (self.half_lr - self.subcut_mm)) ** 2 + (y / (self.half_ap - self.subcut_mm)) ** 2)
        r_cav = np.sqrt((x / (self.half_lr - inner)) ** 2 + (y / (self.half_ap - inner)) ** 2) / w_cav
        out[r_body < 1] = Tissue.SUBCUT_FAT
        out[r_mus / w_body < 1] = Tissue.MUSCLE
        # ribs: ovals of marrow in the chest wall, ~25 mm apart along the body axis
        wall = (r_mus / w_body < 1) & (r_cav > 0.97)
        rib = (np.cos(2 * np.pi * (z + 0.6 * y) / 26.0 + self.rib_phase) > 0.55) & (y > -0.94 * np.hypot(x, y))
        out[wall & rib] = Tissue.BONE
        cavity = r_cav < 1
        # diaphragm: right dome (negative x) higher than the left, domed front to back as well
        yn = y / self.half_ap
        dome = (
            self.diaphragm_z
            + self.liver_dome_mm / (1 + np.exp((x + 25.0) / 25.0))
            - 25.0 * (yn - 0.1) ** 2
            + 4.0 * self._wobble(z_ang, 3)
            - 4.0
        )
        below = z < dome
        # mediastinum: a lumpy rounded region of fat and vessels, not a box
        mx, my = (x - 5.0) / 30.0, (y + 0.1 * self.half_ap) / (0.55 * self.half_ap)
        z_med = (mx + 1j * my).astype(np.complex64)
        z_med /= np.abs(z_med) + 1e-6
        mediastinum = (mx**4 + my**4) ** 0.25 < self._wobble(z_med, 2)
        out[cavity & ~below] = Tissue.LUNG
        out[cavity & ~below & mediastinum] = Tissue.MEDIASTINUM
        out[cavity & below] = Tissue.ABDOMEN
        out[cavity & below & (x < 45.0 + 8.0 * self._wobble(z_ang, 3) - 8.0)] = Tissue.LIVER
        st = self.stomach
        e_st = ((x - st[0]) / st[3]) ** 2 + ((y - st[1]) / st[4]) ** 2 + ((z - st[2]) / st[5]) ** 2
        out[cavity & below & (e_st < 1)] = Tissue.STOMACH
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
        shape=rng.normal(0, 1, (6, 4)) * (0.05 / np.arange(1, 7))[:, None],
        stomach=np.array(
            [
                rng.uniform(55, 95),
                rng.uniform(-40, 10),
                heart_low_z - rng.uniform(25, 55),
                rng.uniform(30, 50),
                rng.uniform(25, 45),
                rng.uniform(25, 45),
            ]
        ),
        rib_phase=float(rng.uniform(0, 2 * np.pi)),
    )
