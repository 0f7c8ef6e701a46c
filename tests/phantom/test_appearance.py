"""Randomised rendering changes how a study looks, never what it is: ground truth, geometry and findings stay."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom

from phantom import study as study_module
from phantom.anatomy import Heart
from phantom.appearance import Appearance, draw_appearance, render_cine
from phantom.conditions import build_case
from phantom.sites import SITES
from phantom.tissues import N_TISSUES, Tissue

from .helpers import read_csv


def _heart(cond: str, seed: int) -> Heart:
    rng = np.random.default_rng(seed)
    return Heart(build_case(rng, [cond], "moderate" if cond != "normal" else "none"), 1.9, rng, np.zeros(3))


def _extreme(app: Appearance) -> Appearance:
    """The same study drawn with a contrast far from bSSFP and every artefact on."""
    lut = np.linspace(1.4, 0.05, N_TISSUES).astype(np.float32)
    lut[Tissue.AIR], lut[Tissue.LV_BLOOD] = 0.0, 1.0
    lut[Tissue.SCAR] = lut[Tissue.MYOCARDIUM]
    return dataclasses.replace(
        app, bssfp=lut, kspace=(0.5, 0.7), banding=0.9, flow_void=0.6, wrap_prob=1.0, background_mask=3.0,
        noise_factor=2.0,
    )


def test_appearance_draws_keep_scar_invisible_on_cines_and_vary() -> None:
    apps = [draw_appearance(np.random.default_rng(i), SITES["site_a"]) for i in range(200)]
    assert all(a.bssfp[Tissue.SCAR] == a.bssfp[Tissue.MYOCARDIUM] for a in apps)
    myo = np.array([a.bssfp[Tissue.MYOCARDIUM] for a in apps])
    assert myo.std() / myo.mean() > 0.15  # contrast is not one fixed value
    assert all(abs(a.bssfp[Tissue.MYOCARDIUM] - a.bssfp[Tissue.LV_BLOOD]) >= 0.2 for a in apps)


def test_a_scar_is_geometry_on_cines_not_intensity() -> None:
    """Render a prior infarction's SAX labels: the scar's pixels look like remote myocardium, whatever the draw."""
    heart = _heart("prior_infarction", 3)
    assert heart.spec.scars
    s = heart.spec.scars[0]
    u = heart.apex_u * 0.5 * (s.u_from + s.u_to)
    g = np.arange(-60, 60, 1.0)
    pp, qq = np.meshgrid(g, g, indexing="ij")
    loc = np.stack([np.full(pp.size, u), pp.ravel(), qq.ravel()], axis=1)
    prep = heart.prepare(heart.to_patient(loc))
    lab = np.zeros(pp.size, dtype=np.uint8)
    lab[prep.index] = heart.labels(prep, 0.0)
    labels = lab.reshape(1, *pp.shape)
    assert (labels == Tissue.SCAR).sum() > 20
    scar, myo = labels[0] == Tissue.SCAR, labels[0] == Tissue.MYOCARDIUM
    for seed in range(6):
        rng = np.random.default_rng(seed)
        app = dataclasses.replace(draw_appearance(rng, SITES["site_b"]), noise_factor=0.01, blur_px=0.0,
                                  kspace=(1.0, 1.0), banding=0.0, bias_poly=0.0)
        img = render_cine(labels, app.bssfp, app, np.ones(labels.shape[1:], np.float32), 1000.0, 0.02, rng)
        contrast = abs(float(app.bssfp[Tissue.LV_BLOOD] - app.bssfp[Tissue.MYOCARDIUM])) * 1000
        diff = abs(float(img[0][scar].mean()) - float(img[0][myo].mean()))
        assert diff < 0.1 * contrast, (seed, diff, contrast)


def test_lv_outline_is_not_an_ellipse() -> None:
    heart = _heart("normal", 5)
    theta = np.arange(0, 360, 2.0).astype(np.float32)
    away = np.abs((theta - 15.0 + 180) % 360 - 180) > 120  # far from the septum (no septal bulge there)
    r = heart._lv_fields(theta[away], np.full(away.sum(), 0.5, np.float32))["r_ed"]
    assert r.max() / r.min() > 1.03


def test_any_appearance_gives_the_same_ground_truth_and_geometry(tmp_path: Path, monkeypatch) -> None:
    """The same seed with an extreme appearance: identical ground truth, reports and DICOM geometry; new pixels."""
    from phantom.archive import synthesize

    synthesize(tmp_path / "a", 3, seed=5, progress=False)
    real_draw = study_module.draw_appearance
    monkeypatch.setattr(study_module, "draw_appearance", lambda rng, site: _extreme(real_draw(rng, site)))
    synthesize(tmp_path / "b", 3, seed=5, progress=False)
    for name in ("ground_truth.csv", "reports.csv"):
        assert read_csv(tmp_path / "a" / name) == read_csv(tmp_path / "b" / name)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "dicom").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / "dicom").rglob("*") if p.is_file())
    assert files_a == files_b
    changed = 0
    for rel in files_a[::25]:
        da, db = pydicom.dcmread(tmp_path / "a" / rel), pydicom.dcmread(tmp_path / "b" / rel)
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
                    "SliceThickness", "TriggerTime", "SeriesDescription"):
            assert da.get(tag) == db.get(tag), (rel, tag)
        changed += not np.array_equal(da.pixel_array, db.pixel_array)
    assert changed >= len(files_a[::25]) * 0.9


def test_site_presets_shift_the_look_and_every_site_still_varies() -> None:
    """A site's preset moves its draws (masking is a vendor habit, 3T has more bands and more blood-myocardium
    contrast), and inside every site masked and unmasked, banded and clean studies still both occur."""
    draws = {n: [draw_appearance(np.random.default_rng(i), site) for i in range(300)] for n, site in SITES.items()}
    for name, apps in draws.items():
        look = SITES[name]["appearance"]
        masked = np.mean([a.background_mask > 0 for a in apps])
        banded = np.mean([a.banding > 0 for a in apps])
        assert abs(masked - look["background_mask_prob"]) < 0.08 and 0 < masked < 1, (name, masked)
        assert abs(banded - look["banding_prob"]) < 0.08 and 0 < banded < 1, (name, banded)
    myo = {name: np.median([a.bssfp[Tissue.MYOCARDIUM] for a in apps]) for name, apps in draws.items()}
    assert myo["site_b"] < myo["site_a"] < myo["site_c"]
