"""Domain-randomised appearance: how one study's label maps become scanner images.

The phantom's anatomy and motion carry the diagnosis; nothing about how tissues *look* may. So, as SynthSeg
does for brain MRI (Billot et al., MedIA 2023), every study draws its own appearance, independent of its
condition: per-tissue intensities around bSSFP / LGE values (log-normal jitter, and now and then far from them),
texture inside tissues, a coil bias field, bSSFP off-resonance dark bands,
flow voids in the blood pools, wrap-around, k-space truncation (Gibbs ringing and a random effective in-plane
resolution, zero-filled back to the matrix as scanners do), complex Gaussian noise at a random SNR (so magnitude
images are Rician) and, on some scanners, background masking of air to zero.

Calibrated on the four Sunnybrook stacks (``bench/realism.py``): there, subcutaneous and mediastinal fat are
brighter than blood (blood ≈ 0.55 of the image's 99th percentile), the myocardium ≈ 0.4 of blood, 10-45 % of
pixels are exactly zero (air masked), and the images are zero-filled from a 192-224 acquired matrix.

The random draws never look at the case: :func:`draw_appearance` takes the site preset only, and in cine images
a scar has the myocardium's value, so a finding is visible in cines only through geometry and motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import gaussian_filter, uniform_filter

from phantom.tissues import N_TISSUES, Tissue

T = Tissue
# bSSFP signal relative to blood, and the log-normal spread of each across studies (balanced SSFP: T2/T1
# contrast, so fat and fluid are bright, myocardium and muscle dark; values read off real cines).
BSSFP: dict[Tissue, tuple[float, float]] = {
    T.AIR: (0.0, 0.0),
    T.SUBCUT_FAT: (1.45, 0.2),
    T.MUSCLE: (0.3, 0.25),
    T.LUNG: (0.05, 0.45),
    T.LIVER: (0.38, 0.25),
    T.ABDOMEN: (0.35, 0.35),
    T.BONE: (0.4, 0.3),
    T.CSF: (1.05, 0.15),
    T.MEDIASTINUM: (0.8, 0.3),
    T.VESSEL_BLOOD: (0.9, 0.2),
    T.LV_BLOOD: (1.0, 0.0),
    T.RV_BLOOD: (0.97, 0.06),
    T.ATRIAL_BLOOD: (0.95, 0.08),
    T.AORTIC_BLOOD: (0.95, 0.1),
    T.MYOCARDIUM: (0.36, 0.2),
    T.SCAR: (0.36, 0.0),  # tied to MYOCARDIUM below: scar is invisible on cines
    T.EPI_FAT: (1.35, 0.2),
    T.PERICARDIUM: (0.12, 0.4),
    T.EFFUSION: (1.05, 0.15),
    T.VESSEL_WALL: (0.3, 0.3),
    T.STOMACH: (0.6, 0.8),  # gas (dark) to fluid (bright)
}
# A site's look, as sites.py presets override it: myocardium signal factor (3T bSSFP has more blood-myocardium
# contrast), acquired share of phase-encoding lines, and how often flow voids, off-resonance bands and air masking
# appear (more of the first two at 3T; masking is a vendor default).
SITE_LOOK: dict[str, Any] = {
    "myocardium": 1.0,
    "kspace_rows": (0.55, 1.0),
    "flow_void_prob": 0.4,
    "banding_prob": 0.35,
    "background_mask_prob": 0.4,
}
FAR_PROB = 0.1  # share of studies whose cine contrast is drawn uniformly (SynthSeg-style), not around bSSFP
# Texture: relative amplitude of a smooth random field inside each tissue.
TEXTURE = {
    T.SUBCUT_FAT: 0.12,
    T.MUSCLE: 0.12,
    T.LUNG: 0.6,
    T.LIVER: 0.08,
    T.ABDOMEN: 0.25,
    T.BONE: 0.2,
    T.MEDIASTINUM: 0.2,
    T.EPI_FAT: 0.15,
    T.MYOCARDIUM: 0.16,
    T.SCAR: 0.16,
    T.LV_BLOOD: 0.04,
    T.RV_BLOOD: 0.05,
    T.ATRIAL_BLOOD: 0.06,
    T.AORTIC_BLOOD: 0.05,
    T.VESSEL_BLOOD: 0.06,
    T.STOMACH: 0.4,
}
BLOOD = (T.LV_BLOOD, T.RV_BLOOD, T.ATRIAL_BLOOD, T.AORTIC_BLOOD)
IS_BLOOD = np.isin(np.arange(N_TISSUES), BLOOD).astype(np.float32)
IS_LUNG = (np.arange(N_TISSUES) == T.LUNG).astype(np.float32)


@dataclass(frozen=True)
class Appearance:
    """One study's imaging appearance (drawn once, independent of the case)."""

    bssfp: np.ndarray  # (N_TISSUES,) cine intensity per tissue, blood ~1
    lge_jitter: np.ndarray  # (N_TISSUES,) multiplicative jitter of the LGE table
    texture: np.ndarray  # (N_TISSUES,) texture amplitude per tissue
    texture_px: float  # texture grain (Gaussian sigma, pixels)
    noise_factor: float  # multiplies the site's noise level
    blur_px: float  # in-plane point spread (Gaussian sigma, pixels)
    kspace: tuple[float, float]  # acquired fraction of k-space (phase rows, readout columns)
    flow_void: float  # depth of systolic flow voids in the blood pools (0: none)
    banding: float  # depth of bSSFP off-resonance dark bands (0: none)
    wrap_prob: float  # chance that a series folds in tissue from outside the FOV
    background_mask: float  # air below this many noise sigmas is set to 0 (0: not masked)
    bias_poly: float  # strength of an extra smooth multiplicative field
    misregistration: float  # breath-hold slice shift scale (1: the old default, mm sd 1.5/1.5/2.5)


def draw_appearance(rng: np.random.Generator, site: dict) -> Appearance:
    """Draw a study's appearance from the site preset and ``rng`` only (never from the case).

    The site's ``appearance`` preset (:data:`SITE_LOOK` keys) shifts the draws the way scanners of one vendor and
    field strength share a look; every draw still spreads around it, so no site has one fixed appearance."""
    look = {**SITE_LOOK, **site.get("appearance", {})}
    lut = np.zeros(N_TISSUES, dtype=np.float32)
    for tissue, (mean, spread) in BSSFP.items():
        lut[tissue] = mean * float(np.exp(rng.normal(0.0, spread))) if spread else mean
    lut[T.MYOCARDIUM] *= look["myocardium"]
    if rng.random() < FAR_PROB:
        lut = rng.uniform(0.03, 1.5, N_TISSUES).astype(np.float32)
        lut[T.AIR] = 0.0
        lut[T.LV_BLOOD] = 1.0
        lut[T.LUNG] = rng.uniform(0.02, 0.2)  # air-filled lung has little signal in any sequence: physics, not contrast
        while abs(lut[T.MYOCARDIUM] - 1.0) < 0.3:  # keep the wall visible against the cavity
            lut[T.MYOCARDIUM] = rng.uniform(0.03, 1.5)
    lut[T.SCAR] = lut[T.MYOCARDIUM]
    tex = np.full(N_TISSUES, 0.1, dtype=np.float32)
    for tissue, amp in TEXTURE.items():
        tex[tissue] = amp
    tex *= float(rng.uniform(0.4, 1.6))
    tex[T.AIR] = 0.0
    return Appearance(
        bssfp=lut,
        lge_jitter=np.exp(rng.normal(0.0, 0.15, N_TISSUES)).astype(np.float32),
        texture=tex,
        texture_px=float(rng.uniform(0.5, 1.6)),
        noise_factor=float(np.exp(rng.normal(0.0, 0.35))),
        blur_px=float(rng.uniform(0.3, 0.9)),
        kspace=(float(rng.uniform(*look["kspace_rows"])), float(rng.uniform(0.7, 1.0))),
        flow_void=float(rng.uniform(0.2, 0.6)) if rng.random() < look["flow_void_prob"] else 0.0,
        banding=float(rng.uniform(0.4, 0.9)) if rng.random() < look["banding_prob"] else 0.0,
        wrap_prob=0.25 if rng.random() < 0.4 else 0.0,
        background_mask=float(rng.uniform(1.5, 3.0)) if rng.random() < look["background_mask_prob"] else 0.0,
        bias_poly=float(rng.uniform(0.0, 0.35)),
        misregistration=float(np.exp(rng.normal(0.0, 0.5))),
    )


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian random field with grain ``sigma`` pixels."""
    f = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-6)


def _poly_field(rng: np.random.Generator, shape: tuple[int, int], amp: float) -> np.ndarray:
    """exp of a random second-order polynomial over the image: a smooth extra bias field."""
    h, w = shape
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    c = rng.normal(0, amp, 5)
    return np.exp(c[0] * x + c[1] * y + c[2] * x * x + c[3] * y * y + c[4] * x * y).astype(np.float32)


def _bands(rng: np.random.Generator, shape: tuple[int, int], depth: float) -> np.ndarray:
    """bSSFP off-resonance banding: signal drops where the off-resonance phase passes pi (mod 2 pi)."""
    h, w = shape
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    ang = rng.uniform(0, 2 * np.pi)
    span = rng.uniform(1.0, 4.0) * np.pi  # phase range over the FOV (B0 inhomogeneity away from isocentre)
    phase = rng.uniform(0, 2 * np.pi) + span * (
        0.5 * (np.cos(ang) * x + np.sin(ang) * y) + rng.uniform(0.1, 0.5) * (x * x + y * y)
    )
    d = np.abs(np.mod(phase, 2 * np.pi) - np.pi)
    width = rng.uniform(0.12, 0.3)
    return (1.0 - depth * np.exp(-((d / width) ** 2))).astype(np.float32)


def fold(img: np.ndarray, margin: int) -> np.ndarray:
    """Wrap-around in the phase-encoding (row) direction: ``img`` has ``margin`` extra rows on each side."""
    if margin <= 0:
        return img
    core = img[:, margin:-margin].copy()
    core[:, :margin] += img[:, -margin:]
    core[:, -margin:] += img[:, :margin]
    return core


def render_cine(
    labels: np.ndarray,
    lut: np.ndarray,
    app: Appearance,
    bias: np.ndarray,
    scale: float,
    noise: float,
    rng: np.random.Generator,
    phases: list[float] | None = None,
    es_phase: float = 0.37,
    margin: int = 0,
    spacing: float = 1.6,
) -> np.ndarray:
    """Labels ``(S, F, H + 2 margin, W)`` to uint16 magnitude frames ``(F, H, W)`` with this study's appearance.

    ``labels`` holds ``S`` sub-slices through the slice thickness: their signals are averaged, which is the
    through-plane partial volume of a thick slice (walls cut obliquely blur into the blood and the fat).
    ``lut`` is the per-tissue intensity (blood ~1), ``bias`` the coil field on the same (extended) grid,
    ``noise`` the noise sigma relative to blood, ``margin`` the rows outside the FOV that fold back in.
    """
    labels = labels.reshape(-1, *labels.shape[-3:])
    n_f, h, w = labels.shape[1:]
    tex = _smooth_field(rng, (h, w), app.texture_px)
    specks = 0.5 * np.clip(_smooth_field(rng, (h, w), 0.9) - 1.8, 0, None)  # lung vessels in the parenchyma
    img = np.mean([lut[sub] * (1.0 + app.texture[sub] * tex) + IS_LUNG[sub] * specks for sub in labels], axis=0)
    blood = np.mean([IS_BLOOD[sub] for sub in labels], axis=0)
    if app.flow_void > 0 and phases is not None:
        # turbulent / through-plane flow: dark blotches in the pools around peak ejection
        void = np.clip(_smooth_field(rng, (h, w), 6.0 / spacing) - 0.8, 0, None)
        ph = np.mod(np.asarray(phases, dtype=np.float32), 1.0)
        amp = app.flow_void * np.exp(-(((ph - 0.45 * es_phase) / (0.3 * es_phase)) ** 2)).astype(np.float32)
        img *= 1.0 - blood * np.clip(amp[:, None, None] * void, 0, 0.9)
    field = bias * _poly_field(rng, (h, w), app.bias_poly)
    if app.banding > 0:
        field = field * _bands(rng, (h, w), app.banding)
    img *= field * np.float32(scale)
    img = fold(img, margin)
    return _acquire(img, app, noise * scale * app.noise_factor, rng)


def _kept(n: int, frac: float) -> list[slice]:
    """The (unshifted) k-space index ranges of the central ``frac`` of ``n`` lines: low positive and negative."""
    half = max(int(frac * n / 2), 1)
    return [slice(0, half + 1), slice(max(n - half, half + 1), n)]


def _acquire(img: np.ndarray, app: Appearance, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """In-plane blur, k-space truncation (Gibbs ringing, effective resolution; zero-filled back to the matrix),
    complex noise of ``sigma`` per image pixel (correlated, as in a zero-filled image), magnitude, air masking."""
    n_f, h, w = img.shape
    k = sfft.fft2(img, axes=(1, 2), workers=1).astype(np.complex64, copy=False)
    # the point spread of the acquisition, as a Gaussian in k-space (free here, unlike a spatial filter), and
    # nothing outside the acquired lines
    fy, fx = sfft.fftfreq(h).astype(np.float32), sfft.fftfreq(w).astype(np.float32)
    g = np.exp(-2 * np.pi**2 * app.blur_px**2 * (fy[:, None] ** 2 + fx[None, :] ** 2)).astype(np.float32)
    rows, cols = _kept(h, app.kspace[0]), _kept(w, app.kspace[1])
    acquired = np.zeros((h, w), dtype=np.float32)
    for r in rows:
        for c in cols:
            acquired[r, c] = 1.0
    k *= g * acquired
    kept = int(acquired.sum())
    s = np.float32(sigma * h * w / np.sqrt(kept))
    for r in rows:
        for c in cols:
            shape = (n_f, r.stop - r.start, c.stop - c.start)
            k[:, r, c] += s * rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    out = k
    res = np.abs(sfft.ifft2(out, axes=(1, 2), overwrite_x=True, workers=1))
    if app.background_mask > 0:  # the scanner's air masking, decided on the cine's mean (air stays air)
        res *= uniform_filter(res.mean(axis=0), size=5) >= app.background_mask * sigma
    np.clip(res, 0, 4095, out=res)
    res += 0.5
    return res.astype(np.uint16)
