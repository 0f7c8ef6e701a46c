from __future__ import annotations

import numpy as np
import pytest

from phantom.anatomy import Heart
from phantom.conditions import build_case
from phantom.planes import Matrix, lax_plane, sax_stack
from phantom.sites import SITES
from phantom.study import StudyRequest, StudyWriter


@pytest.fixture(scope="module")
def heart() -> Heart:
    rng = np.random.default_rng(0)
    return Heart(build_case(rng, ["normal"], "none"), 1.9, rng, np.array([20.0, -10.0, -30.0]))


def test_heart_axes_orthonormal_and_oriented(heart: Heart) -> None:
    a, s, t = heart.axes
    assert np.allclose(heart.axes @ heart.axes.T, np.eye(3), atol=1e-9)
    assert a[0] > 0 and a[1] < 0 and a[2] < 0  # apex points left, anterior, inferior (LPS)
    assert s[0] < 0  # the RV lies to the patient's right of the LV


def test_sax_stack_moves_along_normal(heart: Heart) -> None:
    rng = np.random.default_rng(1)
    planes = sax_stack(heart, Matrix(144, 176, 1.6), 8.0, 2.0, rng)
    assert 8 <= len(planes) <= 14
    n = planes[0].normal
    assert np.isclose(np.linalg.norm(n), 1.0)
    assert abs(abs(n @ heart.axes[0]) - 1) < 1e-6  # perpendicular to the long axis
    for p in planes:
        assert np.isclose(p.row_dir @ p.col_dir, 0, atol=1e-9)
        assert np.isclose(np.linalg.norm(p.row_dir), 1) and np.isclose(np.linalg.norm(p.col_dir), 1)
    steps = np.diff([p.position @ n for p in planes])
    assert np.allclose(np.abs(steps), 10.0, atol=1e-6)
    # consecutive IPPs differ only along the normal
    d = planes[1].position - planes[0].position
    assert np.allclose(d - (d @ n) * n, 0, atol=1e-6)


@pytest.mark.parametrize("view", ["4ch", "2ch", "3ch"])
def test_long_axis_planes_contain_the_lv_axis(heart: Heart, view: str) -> None:
    p = lax_plane(heart, view, Matrix(160, 160, 1.6), 8.0, np.random.default_rng(2))
    assert abs(p.normal @ heart.axes[0]) < 1e-9
    for u in (0.0, heart.mid_u, heart.apex_u):
        assert abs((heart.point(u) - p.center) @ p.normal) < 1e-6


def test_three_chamber_plane_contains_aortic_root(heart: Heart) -> None:
    p = lax_plane(heart, "3ch", Matrix(160, 160, 1.6), 8.0, np.random.default_rng(3))
    a0, d = heart.aorta_axis(heart.phase(0.0))
    root = heart.to_patient(a0 + 30 * d)
    assert abs((root - p.center) @ p.normal) < 1e-4


def test_pixel_grid_matches_dicom_geometry(heart: Heart) -> None:
    p = lax_plane(heart, "4ch", Matrix(120, 150, 1.7), 8.0, np.random.default_rng(4))
    pts = p.points()
    assert np.allclose(pts[0, 0], p.position, atol=1e-3)
    assert np.allclose(pts[0, 1] - pts[0, 0], p.row_dir * 1.7, atol=1e-3)
    assert np.allclose(pts[1, 0] - pts[0, 0], p.col_dir * 1.7, atol=1e-3)


def test_views_agree_on_the_same_heart() -> None:
    """The LV blood pool seen on SAX and on 4CH is the same 3-D object: the LV centre is blood on both."""
    import datetime as dt

    from phantom.dicom_writer import UidSource
    from phantom.patients import make_patient
    from phantom.tissues import Tissue

    rng = np.random.default_rng(5)
    patient = make_patient(rng, (40, 60), dt.date(2020, 1, 1))
    req = StudyRequest(0, patient, "site_a", SITES["site_a"], ["normal"], "none", dt.date(2020, 1, 1))
    w = StudyWriter(None, req, rng, UidSource(rng))  # type: ignore[arg-type]
    center = w.heart.point(w.heart.mid_u)
    for plane in [w.lax["4ch"], w.lax["2ch"]]:
        lab = w.scene.labels(plane, [0.0])[0, 0]
        rel = center - plane.position
        i, j = int(round(rel @ plane.col_dir / plane.spacing)), int(round(rel @ plane.row_dir / plane.spacing))
        assert lab[i, j] == Tissue.LV_BLOOD


def _local_grid(heart: Heart, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Patient points of a local (u, p, q) grid over the mid-ventricle, and the grid itself."""
    u = np.arange(0.3, 0.8, 0.1) * heart.apex_u
    g = np.arange(-60, 60, step) + step / 2
    uu, pp, qq = np.meshgrid(u, g, g, indexing="ij")
    loc = np.stack([uu.ravel(), pp.ravel(), qq.ravel()], axis=1)
    return heart.to_patient(loc), loc


def test_trabeculae_are_strands_at_the_wall_that_move_with_it(heart: Heart) -> None:
    """Trabeculae sit in the outer layer of the cavity at every phase and follow the wall inwards in systole."""
    from phantom.tissues import Tissue

    pts, loc = _local_grid(heart)
    prep = heart.prepare(pts)
    rho = np.hypot(loc[prep.index, 1], loc[prep.index, 2])
    radii = {}
    for ph in (0.0, heart.es_phase):
        lab = heart.labels(prep, ph)
        blood = lab == Tissue.LV_BLOOD
        strands = (lab == Tissue.MYOCARDIUM) & (rho < np.percentile(rho[blood], 99))
        cavity = blood | strands
        assert 0.01 < strands.sum() / cavity.sum() < 0.3  # strands, not a filled cavity
        # strands lie in the outer part of the cavity: further out than most of its blood
        assert np.median(rho[strands]) > np.percentile(rho[cavity], 60)
        radii[ph] = np.median(rho[strands])
    assert radii[heart.es_phase] < radii[0.0] - 2.0  # they move inwards with the wall


def test_epicardial_fat_fills_the_grooves_not_the_lv_free_wall(heart: Heart) -> None:
    g = heart.phase(0.0)
    u = np.full(4, heart.mid_u)
    groove = heart._fat_weight(heart._groove(np.array([60.0, 300.0])), u[:2], g)
    free_wall = heart._fat_weight(heart._groove(np.array([180.0, 200.0])), u[2:], g)
    assert groove.min() > 3 * free_wall.max()
