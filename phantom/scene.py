"""A patient scene (torso + heart) sampled on image planes over the cardiac cycle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.anatomy import Heart
from phantom.body import Body
from phantom.planes import Plane


@dataclass
class Scene:
    heart: Heart
    body: Body

    def labels(self, plane: Plane, phases: list[float], shift: np.ndarray | None = None) -> np.ndarray:
        """Tissue labels ``(len(phases), rows, cols)`` on a plane.

        ``shift`` displaces the patient (mm) for this acquisition, as a different breath-hold position
        does; the plane itself (and so the DICOM geometry) stays where it was planned.
        """
        pts = plane.points().reshape(-1, 3)
        if shift is not None:
            pts = pts - shift.astype(np.float32)
        background = self.body.labels(pts)
        prep = self.heart.prepare(pts)
        out = np.empty((len(phases), pts.shape[0]), dtype=np.uint8)
        for k, ph in enumerate(phases):
            out[k] = background
            if len(prep.index):
                lab = self.heart.labels(prep, ph)
                hit = lab > 0
                out[k, prep.index[hit]] = lab[hit]
        return out.reshape(len(phases), plane.rows, plane.cols)
