"""An analytic beating heart in patient coordinates.

The heart has its own frame: ``a`` (long axis, base to apex), ``s`` (towards the RV, i.e. the septum) and
``t`` (anterior). Local coordinates are u (mm along ``a`` from the end-diastolic base plane), p, q
(along ``s``, ``t``); the short-axis azimuth is theta = atan2(q, p).

* LV: truncated prolate ellipsoids for endo- and epicardium, their outline perturbed by a few random low
  harmonics that twist from base to apex (so no LV is a perfect ellipse; volumes integrate the same
  fields). The endocardial radius depends on azimuth and long-axis position (septal bulge in HCM, a segment
  that does not move after infarction); the wall thickens in systole so that myocardial volume is roughly
  conserved; the base descends towards the apex.
* RV: an ellipsoid overlapping the LV septum, minus the LV, which leaves a crescent.
* Trabeculae: strands in the outer layer of the LV cavity, fixed to the heart's own coordinates so that they
  move with the wall; papillary muscles that move and thicken with it.
* Atria, an aortic root in the plane of the three-chamber view, epicardial fat (thick in the grooves and over
  the RV, a thin line over the LV free wall), pericardium and an optional effusion rim.

Labels are evaluated at arbitrary points (the pixels of an image plane), so every view is a plane through
the same heart. Volumes are integrated numerically from the same functions (see measure.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from phantom.conditions import CaseSpec, Scar
from phantom.tissues import Tissue

BASE_FRACTION = 0.34  # base-to-equator distance as a fraction of the long semi-axis
PAPILLARY = ((145.0, 4.5), (235.0, 5.0))  # (azimuth, radius mm)
AORTA_LENGTH = 50.0  # mm of LVOT + aortic root modelled
FAT_GROOVE = 2.2  # epicardial fat in the grooves, as a multiple of the heart's fat thickness


def contraction(phase: float | np.ndarray, es_phase: float) -> np.ndarray:
    """Normalised contraction over the cycle: 0 at end-diastole (phase 0), 1 at end-systole.

    Systole is a half cosine; early diastole refills most of the volume, then diastasis, then the
    atrial kick back to 0 at phase 1.
    """
    ph = np.mod(np.asarray(phase, dtype=float), 1.0)
    e1 = es_phase + 0.22
    out = np.where(ph < es_phase, 0.5 * (1 - np.cos(np.pi * ph / es_phase)), 0.0)
    early = (ph >= es_phase) & (ph < e1)
    out = np.where(early, 0.3 + 0.7 * 0.5 * (1 + np.cos(np.pi * (ph - es_phase) / (e1 - es_phase))), out)
    dias = (ph >= e1) & (ph < 0.85)
    out = np.where(dias, 0.3 - 0.1 * (ph - e1) / max(0.85 - e1, 1e-3), out)
    kick = ph >= 0.85
    out = np.where(kick, 0.2 * 0.5 * (1 + np.cos(np.pi * (ph - 0.85) / 0.15)), out)
    return out


def _ang_dist(theta_deg: np.ndarray, center: float) -> np.ndarray:
    return np.abs((theta_deg - center + 180.0) % 360.0 - 180.0)


def _window(
    theta_deg: np.ndarray, ufrac: np.ndarray, az: float, width: float, u0: float, u1: float, soft: float = 12.0
) -> np.ndarray:
    """Smooth 0..1 window over an azimuth sector and a long-axis range."""
    if width >= 360:
        wa = np.ones_like(theta_deg)
    else:
        wa = np.clip((width / 2 + soft / 2 - _ang_dist(theta_deg, az)) / soft, 0, 1)
    wu = np.clip((ufrac - u0) / 0.08 + 0.5, 0, 1) * np.clip((u1 - ufrac) / 0.08 + 0.5, 0, 1)
    if u1 >= 1.0:
        wu = np.clip((ufrac - u0) / 0.08 + 0.5, 0, 1)
    return (wa * wu).astype(np.float32)


@dataclass
class Phase:
    """Geometry of one instant of the cycle."""

    c: float  # contraction 0..1
    uc: float  # LV ellipsoid centre along u
    le: float  # endocardial long semi-axis
    ta: float  # apical wall thickness
    ub: float  # base plane
    radial: float  # endocardial radius factor of a normally moving segment
    thick: float  # wall thickening factor of a normally moving segment
    rv_c: np.ndarray  # RV ellipsoid centre (u, p, q)
    rv_ax: np.ndarray  # RV outer semi-axes (u, p, q)
    rv_ub: float
    atria: float  # atrial size factor


class Heart:
    """The heart of one study, solved from a :class:`CaseSpec` so that volumes hit the targets."""

    def __init__(self, spec: CaseSpec, bsa: float, rng: np.random.Generator, center: np.ndarray):
        self.spec = spec
        self.bsa = bsa
        self.es_phase = float(rng.uniform(0.34, 0.40))
        self.axes = _heart_axes(rng)  # rows a, s, t
        self.ao_azimuth = float(rng.uniform(40, 60))
        self.ao_tilt = np.deg2rad(rng.uniform(30, 42))
        self.ao_radius = float(rng.uniform(11.5, 14.5))
        self.fat_mm = float(rng.uniform(1.5, 3.5))
        self.patch_phase = rng.uniform(0, 2 * np.pi, size=2)
        self.long_es = 1.0 - 0.15 * min(spec.lvef / 60.0, 1.1)  # base descent, less when LVEF is low
        self.rv_c0, self.rv_ax0 = np.zeros(3), np.ones(3)  # set by _solve_rv
        self.rv_apex, self.rv_k, self.rv_back = 0.0, 1.0, 1.0
        # no two LVs are the same ellipsoid: harmonics k = 2, 3, 4 of the cavity outline, twisting base to apex
        self.lv_wobble = rng.normal(0, 1, 3) * np.array([0.045, 0.03, 0.02])
        self.lv_wobble_phase = rng.uniform(0, 2 * np.pi, 3)
        self.lv_wobble_twist = rng.normal(0, 1.5, 3)
        self._solve_lv(spec.lvedvi * bsa, spec.lvedvi * bsa * (1 - spec.lvef / 100.0))
        self._solve_rv(spec.rvedvi * bsa, spec.rvedvi * bsa * (1 - spec.rvef / 100.0))
        # place the heart: ``center`` is the LV mid-cavity point on the long axis at end-diastole
        self.origin = np.asarray(center, dtype=float) - self.axes[0] * self.mid_u
        self._rng_seed = int(rng.integers(0, 2**31))
        # trabeculation: drawn from the heart's own seed, so every other draw of the study stays as it was
        own = np.random.default_rng(self._rng_seed)
        self.trab_depth = float(own.uniform(0.05, 0.22))  # share of the cavity radius the trabecular layer takes
        self.trab_waves = [(int(own.integers(3, 25)), float(own.normal(0, 6)), float(own.uniform(0, 2 * np.pi)))
                           for _ in range(8)]
        self.trab_cut = float(own.uniform(0.1, 0.35))  # higher: sparser strands

    # ------------------------------------------------------------------ LV shape
    @property
    def apex_u(self) -> float:
        """Endocardial apex (fixed over the cycle)."""
        return self.uc0 + self.le0

    @property
    def mid_u(self) -> float:
        return 0.5 * self.apex_u

    def _lv_fields(self, theta: np.ndarray, ufrac: np.ndarray) -> dict[str, np.ndarray]:
        """Static per-point LV fields at end-diastole: endocardial radius, wall thickness, motion."""
        spec = self.spec
        extra = spec.septal_mm - spec.wall_mm
        sept = np.exp(-((_ang_dist(theta, 15.0) / 45.0) ** 2)) * np.clip(1.25 - ufrac, 0.35, 1.0)
        dthick = extra * sept
        wall = spec.wall_mm + dthick
        motion = np.ones_like(theta, dtype=np.float32)
        thin = np.ones_like(theta, dtype=np.float32)
        wm = spec.wall_motion
        if wm is not None:
            w = _window(theta, ufrac, wm.azimuth, wm.width, wm.u_from, wm.u_to)
            motion = 1 - w * (1 - wm.motion)
            thin = 1 - w * (1 - wm.thinning)
        th = np.deg2rad(theta)
        wobble = 1.0 + sum(
            a * np.cos(k * th + ph + tw * ufrac)
            for k, a, ph, tw in zip((2, 3, 4), self.lv_wobble, self.lv_wobble_phase, self.lv_wobble_twist, strict=True)
        )
        r_ed = (self.re0 - 0.55 * dthick) * wobble
        return {
            "r_ed": r_ed.astype(np.float32),
            "wall": (wall * thin).astype(np.float32),
            "motion": motion.astype(np.float32),
        }

    def phase(self, ph: float) -> Phase:
        c = float(contraction(ph, self.es_phase))
        le = self.le0 * (1 - c * (1 - self.long_es))
        uc = self.apex_u - le
        ub = uc - BASE_FRACTION * le
        radial = 1 - c * (1 - self.k_es)
        thick = 1 + c * (self.kt_es - 1)
        rv_ax = self.rv_ax0.copy()
        rv_ax[0] *= 1 - c * (1 - self.long_es * 0.97)
        rv_ax[1] *= 1 - c * (1 - self.rv_k)
        rv_ax[2] *= 1 - c * 0.5 * (1 - self.rv_k)
        rv_c = self.rv_c0.copy()
        rv_c[0] = self.rv_apex - rv_ax[0]
        rv_ub = ub - 4.0
        return Phase(c, uc, le, self.ta0 * thick, ub, radial, thick, rv_c, rv_ax, rv_ub, 1 + 0.15 * c)

    def _lv_radii(self, f: dict[str, np.ndarray], g: Phase) -> tuple[np.ndarray, np.ndarray]:
        """Endocardial and epicardial equatorial radii at this phase."""
        m = f["motion"]
        rn = f["r_ed"] * (1 - (1 - g.radial) * m)
        wall = f["wall"] * (1 + (g.thick - 1) * np.clip(m, 0, 1))
        return rn, rn + wall

    def lv_volumes(self, g: Phase, n_u: int = 160, n_t: int = 90) -> tuple[float, float]:
        """(cavity, epicardial) volumes in mL at a phase, integrated in (u, theta) slabs."""
        theta = (np.arange(n_t) + 0.5) * 360.0 / n_t
        u_hi = g.uc + g.le + g.ta
        u = np.linspace(g.ub, u_hi, n_u)
        du = u[1] - u[0]
        uu, tt = np.meshgrid(u, theta, indexing="ij")
        f = self._lv_fields(tt, self._ufrac(uu))
        rn, rp = self._lv_radii(f, g)
        pn = np.clip(1 - ((uu - g.uc) / g.le) ** 2, 0, None)
        pe = np.clip(1 - ((uu - g.uc) / (g.le + g.ta)) ** 2, 0, None)
        dth = 2 * np.pi / n_t
        cav = 0.5 * (rn**2 * pn).sum() * dth * du
        epi = 0.5 * (rp**2 * pe).sum() * dth * du
        return float(cav) / 1000.0, float(epi) / 1000.0

    def _ufrac(self, u: np.ndarray) -> np.ndarray:
        return np.clip(u / max(self.apex_u, 1e-3), 0.0, 1.2)

    def _solve_lv(self, edv: float, esv: float) -> None:
        spec = self.spec
        le = 80.0
        self.ta0 = 0.8 * spec.wall_mm
        self.k_es, self.kt_es = 1.0, 1.0
        for _ in range(4):  # the cavity volume scales with size cubed: a few fixed-point steps
            self.le0 = le
            self.re0 = spec.sphericity * le
            self.uc0 = BASE_FRACTION * le
            cav, _ = self.lv_volumes(self.phase(0.0))
            le *= (edv / cav) ** (1 / 3)
        self.le0, self.re0, self.uc0 = le, spec.sphericity * le, BASE_FRACTION * le
        ed = self.phase(0.0)
        _, epi_ed = self.lv_volumes(ed)
        self.myo_ml = epi_ed - self.lv_volumes(ed)[0]

        def es_err(k: float) -> float:
            self.k_es = k
            return self.lv_volumes(self.phase(self.es_phase))[0] - esv

        lo, hi = 0.15, 1.0
        if es_err(lo) > 0:
            self.k_es = lo
        elif es_err(hi) < 0:
            self.k_es = hi
        else:
            self.k_es = brentq(es_err, lo, hi, xtol=1e-4)

        def myo_err(kt: float) -> float:
            self.kt_es = kt
            cav, epi = self.lv_volumes(self.phase(self.es_phase))
            return (epi - cav) - self.myo_ml

        self.kt_es = brentq(myo_err, 0.8, 3.0, xtol=1e-3) if myo_err(0.8) < 0 < myo_err(3.0) else 1.3

    # ------------------------------------------------------------------ RV shape
    RV_MAX_WIDTH = 85.0

    def _rv_grid(self, step: float = 2.0) -> np.ndarray:
        """Grid points (local) that the RV can occupy at any width up to RV_MAX_WIDTH."""
        g = self.phase(0.0)
        rep = self.re0 + self.spec.wall_mm
        p_hi = rep + self.RV_MAX_WIDTH + 2
        q_hi = 0.97 * rep + 0.3 * self.RV_MAX_WIDTH + 2
        u = np.arange(g.ub - 6, self.apex_u + 4, step) + step / 2
        p = np.arange(-0.2 * rep, p_hi, step) + step / 2
        q = np.arange(-q_hi, q_hi, step) + step / 2
        uu, pp, qq = np.meshgrid(u, p, q, indexing="ij")
        return np.stack([uu.ravel(), pp.ravel(), qq.ravel()], axis=1).astype(np.float32)

    def _set_rv(self, width: float) -> None:
        """RV outer surface: a half-ellipsoid bulging from the septal insertion points to the free wall.

        Semi-axes (u, p towards the free wall, q); the septal side uses the short RV_SEPTAL_SIDE * rep.
        """
        rep = self.re0 + self.spec.wall_mm
        half_len = 0.86 * (self.apex_u + 4.0) / 1.55
        self.rv_apex = self.apex_u * 0.86
        self.rv_c0 = np.array([self.rv_apex - half_len, 0.5 * rep, 0.0])
        self.rv_ax0 = np.array([half_len + 8.0, 0.5 * rep + width, 0.97 * rep + 0.3 * width])
        self.rv_back = 0.3 * rep

    def rv_e(self, loc: np.ndarray, g: Phase, inset: float = 0.0) -> np.ndarray:
        """Normalised squared radius of points in the RV ellipsoid (< 1 inside), ``inset`` mm inside."""
        return self._rv_e(loc[:, 0], loc[:, 1], loc[:, 2], g, inset)

    def _rv_e(self, u: np.ndarray, p: np.ndarray, q: np.ndarray, g: Phase, inset: float = 0.0) -> np.ndarray:
        dp = p - g.rv_c[1]
        ap = np.where(dp >= 0, g.rv_ax[1], self.rv_back) - inset
        return ((u - g.rv_c[0]) / (g.rv_ax[0] - inset)) ** 2 + (dp / ap) ** 2 + (q / (g.rv_ax[2] - inset)) ** 2

    def _rv_cavity(self, loc: np.ndarray, g: Phase, lv_epi: np.ndarray) -> np.ndarray:
        return (self.rv_e(loc, g, self.spec.rv_wall_mm) < 1) & (loc[:, 0] > g.rv_ub) & ~lv_epi

    def _lv_epi_mask(self, loc: np.ndarray, g: Phase) -> np.ndarray:
        u, p, q = loc[:, 0], loc[:, 1], loc[:, 2]
        theta = np.degrees(np.arctan2(q, p)) % 360.0
        rho = np.hypot(p, q)
        f = self._lv_fields(theta, self._ufrac(u))
        _, rp = self._lv_radii(f, g)
        return (((u - g.uc) / (g.le + g.ta)) ** 2 + (rho / rp) ** 2 < 1) & (u > g.ub)

    def rv_volume(self, g: Phase, step: float = 2.0) -> float:
        """RV cavity volume (mL) at a phase, counted on a grid."""
        grid = self._rv_grid(step)
        return float(self._rv_cavity(grid, g, self._lv_epi_mask(grid, g)).sum()) * step**3 / 1000.0

    def _solve_rv(self, edv: float, esv: float) -> None:
        grid = self._rv_grid()
        self._set_rv(self.RV_MAX_WIDTH)
        g0 = self.phase(0.0)
        cand = self.rv_e(grid, g0) < 1.05
        grid = grid[cand]
        lv_ed = self._lv_epi_mask(grid, g0)
        grid, lv_es_grid = grid[~lv_ed], grid
        lv_es = self._lv_epi_mask(lv_es_grid, self.phase(self.es_phase))

        def ed_err(w: float) -> float:
            self._set_rv(w)
            return float(self._rv_cavity(grid, self.phase(0.0), np.zeros(len(grid), bool)).sum()) * 8e-3 - edv

        lo, hi = 6.0, self.RV_MAX_WIDTH
        if ed_err(lo) > 0:
            w = lo
        elif ed_err(hi) < 0:
            w = hi
        else:
            w = brentq(ed_err, lo, hi, xtol=0.05)
        self._set_rv(w)

        def es_err(k: float) -> float:
            self.rv_k = k
            return float(self._rv_cavity(lv_es_grid, self.phase(self.es_phase), lv_es).sum()) * 8e-3 - esv

        self.rv_k = brentq(es_err, 0.2, 1.0, xtol=1e-3) if es_err(0.2) < 0 < es_err(1.0) else 0.6

    # ------------------------------------------------------------------ frames and labels
    def to_local(self, pts: np.ndarray) -> np.ndarray:
        return ((pts.reshape(-1, 3) - self.origin) @ self.axes.T).astype(np.float32)

    def to_patient(self, loc: np.ndarray) -> np.ndarray:
        return np.asarray(loc, dtype=float) @ self.axes + self.origin

    def point(self, u: float, p: float = 0.0, q: float = 0.0) -> np.ndarray:
        return self.to_patient(np.array([u, p, q]))

    def azimuth_dir(self, azimuth_deg: float) -> np.ndarray:
        """Unit vector (patient) in the short-axis plane at an azimuth (0 septum, 90 anterior)."""
        a = np.deg2rad(azimuth_deg)
        return np.cos(a) * self.axes[1] + np.sin(a) * self.axes[2]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Local-frame box (lo, hi) that contains every heart structure at every phase."""
        rep = self.re0 + max(self.spec.wall_mm, self.spec.septal_mm)
        m = self.spec.effusion_mm + FAT_GROOVE * self.fat_mm + 6.0
        side = max(rep, self.rv_ax0[2], 0.45 * self.re0 + 45 * np.sin(self.ao_tilt) + 18) + m
        lo = np.array([-60.0 * self.spec.la_scale - 8, -max(rep, side) - 0 * m, -side])
        hi = np.array([self.apex_u + self.ta0 + m, self.rv_c0[1] + self.rv_ax0[1] + m, side])
        lo[1] = -side
        return lo.astype(np.float32), hi.astype(np.float32)

    def prepare(self, pts: np.ndarray) -> PreparedPoints:
        """Static per-point quantities for a set of patient points (one image plane)."""
        loc = self.to_local(pts)
        lo, hi = self.bounds()
        near = np.flatnonzero(((loc > lo) & (loc < hi)).all(axis=1))
        loc = loc[near]
        u, p, q = loc[:, 0], loc[:, 1], loc[:, 2]
        theta = (np.degrees(np.arctan2(q, p)) % 360.0).astype(np.float32)
        ufrac = self._ufrac(u)
        fields = self._lv_fields(theta, ufrac)
        fields.update(groove=self._groove(theta), trab=self._trab_pattern(theta, ufrac))
        scar_windows = [self._scar_window(s, theta, ufrac, u) for s in self.spec.scars]
        return PreparedPoints(near, loc, np.hypot(p, q).astype(np.float32), theta, ufrac, fields, scar_windows)

    def _scar_window(self, s: Scar, theta: np.ndarray, ufrac: np.ndarray, u: np.ndarray) -> np.ndarray:
        w = _window(theta, ufrac, s.azimuth, s.width, s.u_from, s.u_to, soft=6.0) > 0.5
        if s.patchy:
            ph = self.patch_phase
            w &= (np.sin(np.deg2rad(theta) * 5 + ph[0]) + np.sin(u / 9.0 + ph[1])) > -0.3
        return w

    def labels(self, prep: PreparedPoints, ph: float) -> np.ndarray:
        """Heart tissue labels (0 = not heart) for the prepared points at a cycle phase."""
        g = self.phase(ph)
        u, pp, qq, rho = prep.u, prep.p, prep.q, prep.rho
        rn, rp = self._lv_radii(prep.fields, g)
        du = u - g.uc
        e_endo = (du / g.le) ** 2 + (rho / rn) ** 2
        lp = g.le + g.ta
        e_epi = (du / lp) ** 2 + (rho / rp) ** 2
        above = u > g.ub
        lv_blood = above & (e_endo < 1)
        lv_wall = above & (e_epi < 1) & ~lv_blood
        out = np.zeros(len(u), dtype=np.uint8)

        # envelope distance (approximate) for fat, effusion and pericardium
        grad_lv = 2 * np.sqrt((du / lp**2) ** 2 + (rho / rp**2) ** 2) + 1e-6
        d_lv = (e_epi - 1) / grad_lv
        e_rv = self._rv_e(u, pp, qq, g)
        ax2 = g.rv_ax**2
        grad_rv = (
            2 * np.sqrt(((u - g.rv_c[0]) / ax2[0]) ** 2 + ((pp - g.rv_c[1]) / ax2[1]) ** 2 + (qq / ax2[2]) ** 2) + 1e-6
        )
        d_rv = (e_rv - 1) / grad_rv
        d_env = np.minimum(d_lv, d_rv)
        env_ok = u > g.ub - 14.0
        eff = self.spec.effusion_mm * prep.eff_weight(self) if self.spec.effusion_mm > 0 else 0.0
        f1 = self.fat_mm * self._fat_weight(prep.fields["groove"], u, g)
        out[env_ok & (d_env < f1 + eff + 1.6)] = Tissue.PERICARDIUM
        if self.spec.effusion_mm > 0:
            out[env_ok & (d_env < f1 + eff)] = Tissue.EFFUSION
        out[env_ok & (d_env < f1)] = Tissue.EPI_FAT

        # atria
        for c, ax in self._atria(g):
            e = ((u - c[0]) / ax[0]) ** 2 + ((pp - c[1]) / ax[1]) ** 2 + ((qq - c[2]) / ax[2]) ** 2
            e_in = ((u - c[0]) / (ax[0] - 2)) ** 2 + ((pp - c[1]) / (ax[1] - 2)) ** 2 + ((qq - c[2]) / (ax[2] - 2)) ** 2
            out[e < 1] = Tissue.MYOCARDIUM
            out[e_in < 1] = Tissue.ATRIAL_BLOOD

        # RV
        rv_above = u > g.rv_ub
        rv_in = self._rv_e(u, pp, qq, g, self.spec.rv_wall_mm) < 1
        out[rv_above & (e_rv < 1)] = Tissue.MYOCARDIUM
        out[rv_above & rv_in] = Tissue.RV_BLOOD

        # LV wall, scar, blood, papillary muscles
        out[lv_wall] = Tissue.MYOCARDIUM
        if prep.scar_windows:
            se, sp = np.sqrt(e_endo), np.sqrt(e_epi)
            depth = (se - 1) / np.maximum((se - 1) + (1 - sp), 1e-4)
            for s, w in zip(self.spec.scars, prep.scar_windows, strict=True):
                out[lv_wall & w & (depth >= s.depth_from - 0.02) & (depth <= s.depth_to + 0.02)] = Tissue.SCAR
        out[lv_blood] = Tissue.LV_BLOOD
        out[self._trabeculae(prep, e_endo, lv_blood)] = Tissue.MYOCARDIUM
        for az, r in PAPILLARY:
            ctr_r = 0.72 * self.re0 * g.radial
            a = np.deg2rad(az)
            dp = pp - ctr_r * np.cos(a)
            dq = qq - ctr_r * np.sin(a)
            pm = lv_blood & (dp**2 + dq**2 < (r * (1 + 0.25 * g.c)) ** 2) & (prep.ufrac > 0.3) & (prep.ufrac < 0.75)
            out[pm] = Tissue.MYOCARDIUM

        # aortic root in the plane of the 3-chamber view
        a0, d = self.aorta_axis(g)
        v0, v1, v2 = u - a0[0], pp - a0[1], qq - a0[2]
        along = v0 * d[0] + v1 * d[1] + v2 * d[2]
        perp2 = v0**2 + v1**2 + v2**2 - along**2
        r = self.ao_radius * (1 + 0.22 * np.exp(-(((along - 22.0) / 10.0) ** 2)))
        in_len = (along > 0) & (along < AORTA_LENGTH)
        wall = in_len & (perp2 < (r + 2.0) ** 2) & (along > 14.0) & ~lv_blood & (out != Tissue.RV_BLOOD)
        out[wall & (out != Tissue.ATRIAL_BLOOD)] = Tissue.VESSEL_WALL
        out[in_len & (perp2 < r**2)] = Tissue.AORTIC_BLOOD
        return out

    @staticmethod
    def _groove(theta: np.ndarray) -> np.ndarray:
        """0..1 by azimuth: the anterior and inferior interventricular grooves, and (less) over the RV."""
        groove = np.maximum(
            np.exp(-((_ang_dist(theta, 60.0) / 20.0) ** 2)), np.exp(-((_ang_dist(theta, 300.0) / 20.0) ** 2))
        )
        return np.maximum(groove, 0.6 * np.exp(-((_ang_dist(theta, 0.0) / 35.0) ** 2))).astype(np.float32)

    @staticmethod
    def _fat_weight(groove: np.ndarray, u: np.ndarray, g: Phase) -> np.ndarray:
        """Epicardial fat thickness factor: it fills the interventricular grooves (``groove``) and the
        atrioventricular groove at this phase's base and covers the RV; over most of the LV free wall it is a line."""
        groove = np.maximum(groove, np.exp(-(((u - g.ub) / 10.0) ** 2)))
        return (0.25 + (FAT_GROOVE - 0.25) * groove).astype(np.float32)

    def _trab_pattern(self, theta: np.ndarray, ufrac: np.ndarray) -> np.ndarray:
        """An irregular pattern fixed in the heart's own (azimuth, long-axis) coordinates; strands where it is high."""
        th = np.deg2rad(theta)
        waves = self.trab_waves
        return (sum(np.cos(k * th + a * ufrac + ph) for k, a, ph in waves) / np.sqrt(len(waves))).astype(np.float32)

    def _trabeculae(self, prep: PreparedPoints, e_endo: np.ndarray, lv_blood: np.ndarray) -> np.ndarray:
        """Trabecular strands: the outer ``trab_depth`` of the cavity (deeper towards the apex) where the heart's
        pattern is high; strands taper away from the wall. Fixed to the heart, they move with the wall."""
        pattern = prep.fields["trab"]
        depth = self.trab_depth * np.clip(prep.ufrac * 1.6, 0.3, 1.0)
        inward = np.clip((1.0 - np.sqrt(e_endo)) / np.maximum(depth, 1e-3), 0.0, None)  # 0 at the wall, 1 at depth
        return lv_blood & (inward < 1.0) & (pattern > self.trab_cut + 0.9 * inward) & (prep.ufrac > 0.15)

    def aorta_axis(self, g: Phase) -> tuple[np.ndarray, np.ndarray]:
        """Start point (local) and direction of the LVOT / aortic root axis."""
        az = np.deg2rad(self.ao_azimuth)
        e = np.array([0.0, np.cos(az), np.sin(az)])
        a0 = np.array([g.ub + 10.0, 0, 0]) + e * 0.45 * self.re0
        d = np.array([-np.cos(self.ao_tilt), 0, 0]) + e * np.sin(self.ao_tilt)
        return a0.astype(np.float32), (d / np.linalg.norm(d)).astype(np.float32)

    def _atria(self, g: Phase) -> list[tuple[np.ndarray, np.ndarray]]:
        s = self.spec.la_scale * g.atria
        az = np.deg2rad(self.ao_azimuth + 180.0)
        la_r = np.array([24.0, 21.0, 21.0]) * s
        la_c = np.array([g.ub - la_r[0] * 0.8, 7 * np.cos(az), 7 * np.sin(az)])
        ra_r = np.array([24.0, 22.0, 22.0]) * (0.5 * (1 + s))
        ra_c = np.array([g.ub - ra_r[0] * 0.75, self.rv_c0[1] + 0.35 * self.rv_ax0[1], -6.0])
        return [(la_c.astype(np.float32), la_r.astype(np.float32)), (ra_c.astype(np.float32), ra_r.astype(np.float32))]


@dataclass
class PreparedPoints:
    """Per-point quantities of one plane that do not change over the cycle."""

    index: np.ndarray  # indices into the plane's flattened pixels that lie near the heart
    loc: np.ndarray  # (n, 3) local coordinates
    rho: np.ndarray
    theta: np.ndarray  # degrees
    ufrac: np.ndarray
    fields: dict[str, np.ndarray]
    scar_windows: list[np.ndarray]
    _eff: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.u = np.ascontiguousarray(self.loc[:, 0])
        self.p = np.ascontiguousarray(self.loc[:, 1])
        self.q = np.ascontiguousarray(self.loc[:, 2])

    def eff_weight(self, heart: Heart) -> np.ndarray:
        """Effusion thickness factor: fluid collects posteriorly / inferiorly in a supine patient."""
        if self._eff is None:
            post = heart.axes @ np.array([0.0, 0.7, -0.7])  # posterior-inferior direction, local frame
            v = self.loc - np.array([heart.mid_u, 0, 0], dtype=np.float32)
            n = np.linalg.norm(v, axis=1) + 1e-3
            self._eff = (0.55 + 0.7 * np.clip((v @ post.astype(np.float32)) / n, 0, 1)).astype(np.float32)
        return self._eff


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _heart_axes(rng: np.random.Generator) -> np.ndarray:
    """Rows a (base to apex), s (towards the RV), t (anterior) in LPS patient coordinates."""
    a = np.array([0.62, -0.45, -0.64])
    tilt_axis = np.cross(a, rng.normal(size=3))
    a = _rot(tilt_axis, np.deg2rad(rng.uniform(-10, 10))) @ a
    a /= np.linalg.norm(a)
    ref = np.array([-0.6, -0.7, 0.35])  # right-anterior: where the RV lies
    s = ref - (ref @ a) * a
    s /= np.linalg.norm(s)
    s = _rot(a, np.deg2rad(rng.uniform(-10, 10))) @ s
    t = np.cross(a, s)
    if t @ np.array([0.0, -1.0, 0.6]) < 0:
        t = -t
    return np.stack([a, s, t])
