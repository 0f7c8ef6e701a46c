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

    def labels(
        self, plane: Plane, phases: list[float], shift: np.ndarray | None = None, depths: tuple[float, ...] = (0.0,)
    ) -> np.ndarray:
        """Tissue labels ``(len(depths), len(phases), rows, cols)`` on a plane.

        ``shift`` displaces the patient (mm) for this acquisition, as a different breath-hold position
        does; the plane itself (and so the DICOM geometry) stays where it was planned. ``depths`` are offsets (mm)
        along the plane's normal inside the slice: the heart is sampled at each, the torso (large, slowly varying
        structures) once at the slice's centre.
        """
        pts = plane.points().reshape(-1, 3)
        if shift is not None:
            pts = pts - shift.astype(np.float32)
        background = self.body.labels(pts)
        out = np.empty((len(depths), len(phases), pts.shape[0]), dtype=np.uint8)
        for i, depth in enumerate(depths):
            prep = self.heart.prepare(pts + (depth * plane.normal).astype(np.float32))
            for k, ph in enumerate(phases):
                out[i, k] = background
                if len(prep.index):
                    lab = self.heart.labels(prep, ph)
                    hit = lab > 0
                    out[i, k, prep.index[hit]] = lab[hit]
        return out.reshape(len(depths), len(phases), plane.rows, plane.cols)
