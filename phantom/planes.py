"""Image planes in patient coordinates and how a scanner operator plans them on the heart.

DICOM conventions: ``row_dir`` is the direction of increasing column index (first ImageOrientationPatient
triplet), ``col_dir`` the direction of increasing row index; ImagePositionPatient is the centre of the
top-left pixel; PixelSpacing is (spacing between rows, spacing between columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.anatomy import Heart, _rot


@dataclass(frozen=True)
class Plane:
    center: np.ndarray  # (3,) patient mm, centre of the image
    row_dir: np.ndarray
    col_dir: np.ndarray
    rows: int
    cols: int
    spacing: float  # square pixels, mm
    thickness: float

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    @property
    def position(self) -> np.ndarray:
        """ImagePositionPatient: centre of pixel (0, 0)."""
        return (
            self.center
            - self.row_dir * self.spacing * (self.cols - 1) / 2
            - self.col_dir * self.spacing * (self.rows - 1) / 2
        )

    @property
    def orientation(self) -> np.ndarray:
        return np.concatenate([self.row_dir, self.col_dir])

    @property
    def slice_location(self) -> float:
        return float(self.center @ self.normal)

    def points(self) -> np.ndarray:
        """Patient coordinates of every pixel centre, shape (rows, cols, 3), float32."""
        j = np.arange(self.cols, dtype=np.float32) * self.spacing
        i = np.arange(self.rows, dtype=np.float32) * self.spacing
        p0 = self.position.astype(np.float32)
        return (
            p0 + i[:, None, None] * self.col_dir.astype(np.float32) + j[None, :, None] * self.row_dir.astype(np.float32)
        )

    def with_size(self, rows: int, cols: int, spacing: float) -> Plane:
        return Plane(self.center, self.row_dir, self.col_dir, rows, cols, spacing, self.thickness)


@dataclass(frozen=True)
class Matrix:
    rows: int
    cols: int
    spacing: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def sax_stack(
    heart: Heart,
    m: Matrix,
    thickness: float,
    gap: float,
    rng: np.random.Generator,
    min_slices: int = 8,
    max_slices: int = 14,
) -> list[Plane]:
    """Short-axis planes perpendicular to the long axis, base to apex, viewed from the apex."""
    a, s, t = heart.axes
    spacing = thickness + gap
    u0 = -float(rng.uniform(2, 6))  # first slice just above the mitral plane
    u1 = heart.apex_u + heart.ta0 * 0.5
    n = int(np.clip(round((u1 - u0) / spacing) + 1, min_slices, max_slices))
    rot = _rot(a, np.deg2rad(rng.uniform(-20, 20)))
    row, col = rot @ -s, rot @ -t
    offset = _inplane_offset(rng, row, col)
    return [
        Plane(heart.point(u0 + k * spacing) + offset, row, col, m.rows, m.cols, m.spacing, thickness) for k in range(n)
    ]


def lax_plane(heart: Heart, view: str, m: Matrix, thickness: float, rng: np.random.Generator) -> Plane:
    """A long-axis plane containing the LV long axis.

    4ch: through the septum and lateral wall (both ventricles); 2ch: anterior and inferior walls (LV only);
    3ch: through the LV outflow tract and aortic root.
    """
    a = heart.axes[0]
    azimuth = {"4ch": float(rng.uniform(-22, -8)), "2ch": float(rng.uniform(84, 96)), "3ch": heart.ao_azimuth}[view]
    e = heart.azimuth_dir(azimuth)
    # apex towards the top of the image, the first azimuth direction to the image left
    row, col = -e, -a
    rot = _rot(np.cross(row, col), np.deg2rad(rng.uniform(-15, 15)))
    row, col = rot @ row, rot @ col
    center = heart.point(heart.mid_u - 18.0) + _inplane_offset(rng, row, col)
    return Plane(center, row, col, m.rows, m.cols, m.spacing, thickness)


def localizer_planes(heart: Heart, m: Matrix, rng: np.random.Generator) -> list[Plane]:
    """Axial, coronal and sagittal planes through the heart (a 3-plane scout)."""
    c = heart.point(heart.mid_u) + rng.normal(0, 8, size=3)
    x, y, z = np.eye(3)
    return [
        Plane(c, x, y, m.rows, m.cols, m.spacing, 10.0),
        Plane(c, x, -z, m.rows, m.cols, m.spacing, 10.0),
        Plane(c, y, -z, m.rows, m.cols, m.spacing, 10.0),
    ]


def _inplane_offset(rng: np.random.Generator, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Operators rarely centre the FOV exactly on the heart."""
    return row * rng.uniform(-25, 25) + col * rng.uniform(-20, 20)


def choose_matrix(rng: np.random.Generator, site: dict) -> Matrix:
    cols = int(rng.choice(site["columns"]))
    rows = int(round(cols * float(rng.choice(site["row_fraction"])) / 2) * 2)
    spacing = round(float(rng.uniform(*site["pixel_spacing"])), 4)
    return Matrix(rows, cols, spacing)


def unit(v: np.ndarray) -> np.ndarray:
    return _unit(v)
