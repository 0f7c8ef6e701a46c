from __future__ import annotations

import numpy as np
import pytest

from phantom.anatomy import Heart
from phantom.conditions import CONDITIONS, SEVERITIES, build_case
from phantom.measure import findings, measure


def _case(cond: str, sev: str, seed: int):
    rng = np.random.default_rng(seed)
    spec = build_case(rng, [cond], sev)
    heart = Heart(spec, float(rng.uniform(1.6, 2.2)), rng, np.zeros(3))
    m = measure(heart)
    return spec, heart, m, findings(m, heart)


@pytest.mark.parametrize("sev", SEVERITIES)
def test_condition_ranges(sev: str) -> None:
    for seed in range(2):
        _, _, m, f = _case("dilated_cardiomyopathy", sev, seed)
        assert m.lvef < 40 and m.lvedvi > 100 and f["lv_dilation"] and f["lv_systolic_dysfunction"]
        _, _, m, f = _case("hypertrophic_cardiomyopathy", sev, seed)
        assert m.lv_max_wall_mm >= 15 and m.lvef >= 60 and f["lv_hypertrophy"]
        spec, _, m, f = _case("rv_dilation", sev, seed)
        assert m.rvedvi > 110 and f["rv_dilation"]
        assert f["rv_systolic_dysfunction"] == (spec.rvef < 45) and abs(m.rvef - spec.rvef) < 3
        spec, _, m, f = _case("prior_infarction", sev, seed)
        assert f["lge_present"] and f["regional_wall_motion_abnormality"] and spec.territory in ("LAD", "RCA", "LCx")
        _, _, m, f = _case("amyloidosis", sev, seed)
        assert f["lv_hypertrophy"] and f["lge_present"]
        _, _, m, f = _case("myocarditis", sev, seed)
        assert f["lge_present"] and not f["lv_dilation"]
        _, _, m, f = _case("pericardial_effusion", sev, seed)
        assert f["pericardial_effusion"]


def test_normal_has_no_findings() -> None:
    for seed in range(4):
        _, _, m, f = _case("normal", "none", seed)
        assert 55 <= m.lvef <= 70 and 60 <= m.lvedvi <= 90
        assert not any(f.values())


def test_volumes_match_a_voxel_count() -> None:
    """The analytic LV volume agrees with counting labelled voxels of the same implicit surfaces."""
    from phantom.tissues import Tissue

    spec, heart, m, _ = _case("hypertrophic_cardiomyopathy", "moderate", 7)
    step = 1.5
    g = np.arange(-70, 70, step) + step / 2
    u = np.arange(-5, heart.apex_u + 5, step) + step / 2
    uu, pp, qq = np.meshgrid(u, g, g, indexing="ij")
    pts = heart.to_patient(np.stack([uu.ravel(), pp.ravel(), qq.ravel()], axis=1))
    prep = heart.prepare(pts)
    lab = heart.labels(prep, 0.0)
    blood = ((lab == Tissue.LV_BLOOD) | (lab == Tissue.AORTIC_BLOOD)).sum() * step**3 / 1000
    papillary = 0.1 * m.lvedv  # papillary muscles are counted as blood pool in the report convention
    assert abs(blood - m.lvedv) < papillary


def test_every_condition_is_buildable() -> None:
    for i, cond in enumerate(CONDITIONS):
        sev = "none" if cond == "normal" else "moderate"
        spec, heart, m, _ = _case(cond, sev, 100 + i)
        assert spec.conditions[0] == cond
        assert 5 < m.lvef < 85 and m.lv_mass > 40


def test_function_is_not_given_away_by_size_or_wall() -> None:
    """Motion findings must need motion: some dilated RVs contract well, some poorly; a severe amyloid heart's wall
    is not thicker than a mild one's; a severe myocarditis has a poorly contracting LV that is not dilated."""
    rv = [_case("rv_dilation", sev, seed)[3] for sev in SEVERITIES for seed in range(8)]
    assert all(f["rv_dilation"] for f in rv)
    assert 0 < sum(f["rv_systolic_dysfunction"] for f in rv) < len(rv)
    walls = {sev: [_case("amyloidosis", sev, seed)[0].wall_mm for seed in range(8)] for sev in ("mild", "severe")}
    assert min(walls["mild"]) < np.median(walls["severe"]) < max(walls["mild"])
    for seed in range(3):
        _, _, m, f = _case("myocarditis", "severe", seed)
        assert f["lv_systolic_dysfunction"] and not f["lv_dilation"]
