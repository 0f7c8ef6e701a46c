"""How far the phantom's short-axis cines are from real ones: image statistics side by side, and a classifier's view.

    .venv/bin/cmr synth --studies 24 --seed 3 --out /tmp/ph
    .venv/bin/python bench/realism.py --phantom /tmp/ph --real ../shared/realdata [--figure out.png]

Both archives go through the product's own ingest (``indexer.pipeline.ingest_folder`` into a throwaway SQLite
catalog), so the SAX stacks and clips compared are exactly what training and search see.

Part 1, per stack (mid-ventricular slices, three frames each, resampled to 1.5 mm): the LV blood pool is found
the same way on both sides (``indexer.clips.heart.heart_center``, then the bright connected region around it),
the myocardium is a 2-5 mm ring outside it, the surroundings everything > 50 mm from the LV centre. Intensities
are relative to the blood pool. The table prints each statistic's mean ± sd over stacks, real beside phantom, and
the standardised difference d = (phantom - real) / pooled sd; the distance is the mean |d|.

Part 2: plain logistic regression, phantom vs real, on the product's SAX clips (each of the 3 × 16 frames of a
clip is one sample), group k-fold by stack so that no stack is both trained and tested on; AUC of the pooled
out-of-fold scores, on raw pixels (pooled to 16 × 16) and on 8 simple image statistics.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.clips.heart import heart_center, moving_extent, patient_to_pixel  # noqa: E402
from indexer.dicom.pixels import SeriesPixels, load_series  # noqa: E402
from indexer.dicom.views import oriented_axis  # noqa: E402

GRID_MM = 1.5  # common pixel size for the raw statistics
STAT_NAMES = [
    ("blood_rel_p99", "blood pool / image p99"),
    ("myo_rel", "myocardium / blood"),
    ("surround_median", "surroundings median / blood"),
    ("surround_p90", "surroundings p90 / blood"),
    ("surround_dark", "surroundings share < 0.1 blood"),
    ("noise_bg", "noise in dark surroundings / blood"),
    ("noise_blood", "noise in blood pool / blood"),
    ("texture_myo", "myocardium IQR / blood"),
    ("edge_mm", "blood-myocardium edge width, mm"),
    ("spec_slope", "power-spectrum slope (log-log)"),
    ("hf_share", "power share above 0.15 cycles/mm"),
]


@dataclass
class Stack:
    name: str
    px: SeriesPixels
    clip: np.ndarray  # [3, T, 64, 64]


# ------------------------------------------------------------------------------------------------ loading
def load_stacks(root: Path, work: Path) -> list[Stack]:
    """Ingest ``root`` with the product's ingest into a catalog under ``work``; the SAX stack and clip of each study."""
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import Study
    from cmrclip.clips import load_clip
    from indexer.pipeline import ingest_folder
    from migrations.apply import upgrade

    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'catalog.sqlite'}"
    upgrade(url)
    dicom = root / "dicom" if (root / "dicom").is_dir() else root
    ingest_folder(url, dicom, work / "clips", workers=1, progress=False)
    out = []
    with session_scope(url) as s:
        for st in s.scalars(select(Study).order_by(Study.study_uid)):
            sax = [se for se in st.series if se.view == "sax"]
            if not st.clip_path or not sax:
                continue
            clip = load_clip(Path(st.clip_path)).get("sax")
            if clip is None:
                continue
            parts = [load_series(se.frames, se.rows, se.columns, se.pixel_spacing_mm) for se in sax]
            px = parts[0] if len(parts) == 1 else _join(parts)
            if px.data.shape[0] < 4 or px.data.shape[1] < 4:
                continue
            out.append(Stack(st.study_uid, px, np.asarray(clip, dtype=np.float32)))
    return out


def _join(parts: list[SeriesPixels]) -> SeriesPixels:
    same = [p for p in parts if p.data.shape[1:] == parts[0].data.shape[1:]]
    return SeriesPixels.stack(same)


# ------------------------------------------------------------------------------------------------ statistics
def _resample(img: np.ndarray, spacing: float) -> np.ndarray:
    return ndimage.zoom(img, spacing / GRID_MM, order=1)


def _noise(img: np.ndarray, mask: np.ndarray) -> float:
    """Robust sigma of white noise from horizontal neighbour differences inside ``mask``."""
    d = img[:, 1:] - img[:, :-1]
    m = mask[:, 1:] & mask[:, :-1]
    if m.sum() < 30:
        return float("nan")
    v = d[m]
    return float(1.4826 * np.median(np.abs(v - np.median(v))) / np.sqrt(2))


def _spectrum(img: np.ndarray, r: float, c: float, size: int = 96) -> tuple[float, float]:
    """Slope of the radially averaged power spectrum (log-log, 0.02-0.25 cycles/mm) of a window around the LV,
    and the share of power above 0.15 cycles/mm."""
    half = size / 2
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    win = ndimage.map_coordinates(img, [rr + r - half, cc + c - half], order=1, mode="constant", cval=0.0)
    win = (win - win.mean()) * np.outer(np.hanning(size), np.hanning(size))
    p = np.abs(np.fft.fftshift(np.fft.fft2(win))) ** 2
    f = np.hypot(*(np.mgrid[0:size, 0:size] - size // 2)) / (size * GRID_MM)
    bins = np.linspace(0.0, 0.5 / GRID_MM, 41)
    idx = np.digitize(f.ravel(), bins)
    radial = np.bincount(idx, weights=p.ravel(), minlength=len(bins) + 1)[1 : len(bins)]
    count = np.bincount(idx, minlength=len(bins) + 1)[1 : len(bins)]
    fc = 0.5 * (bins[1:] + bins[:-1])
    radial = radial / np.maximum(count, 1)
    band = (fc > 0.02) & (fc < 0.25) & (radial > 0)
    slope = float(np.polyfit(np.log(fc[band]), np.log(radial[band]), 1)[0])
    total = p[f > 0.01].sum()
    return slope, float(p[f > 0.15].sum() / max(total, 1e-12))


def slice_stats(img: np.ndarray, r: float, c: float) -> dict[str, float] | None:
    """Statistics of one image (already at GRID_MM) with the LV centre at (r, c); None if no blood pool is found."""
    img = img.astype(np.float32)
    p99 = float(np.percentile(img, 99)) + 1e-6
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    d = np.hypot(yy - r, xx - c) * GRID_MM
    core = d < 6
    if core.sum() < 5:
        return None
    blood_est = float(np.median(img[core]))
    dark = float(np.percentile(img[d < 45], 20))
    lab, _ = ndimage.label((img > 0.5 * (blood_est + dark)) & (d < 50))
    ids = lab[core]
    ids = ids[ids > 0]
    if ids.size == 0:
        return None
    pool = ndimage.binary_opening(lab == np.bincount(ids).argmax())
    inside = ndimage.distance_transform_edt(pool) * GRID_MM
    outside = ndimage.distance_transform_edt(~pool) * GRID_MM
    blood_core = inside > 2
    ring = (outside > 2) & (outside < 5)
    surround = d > 50
    if blood_core.sum() < 10 or ring.sum() < 10 or surround.sum() < 100:
        return None
    blood = float(np.median(img[blood_core]))
    myo = float(np.median(img[ring]))
    sur = img[surround]
    dark_sur = surround & (img <= np.percentile(sur, 25))
    gy, gx = ndimage.sobel(img, 0) / (8 * GRID_MM), ndimage.sobel(img, 1) / (8 * GRID_MM)
    edge = (inside > 0) & (inside <= GRID_MM) | (outside > 0) & (outside <= GRID_MM)
    grad = float(np.percentile(np.hypot(gy, gx)[edge], 75))
    slope, hf = _spectrum(img, r, c)
    q75, q25 = np.percentile(img[ring], [75, 25])
    return {
        "blood_rel_p99": blood / p99,
        "myo_rel": myo / blood,
        "surround_median": float(np.median(sur)) / blood,
        "surround_p90": float(np.percentile(sur, 90)) / blood,
        "surround_dark": float((sur < 0.1 * blood).mean()),
        "noise_bg": _noise(img, dark_sur) / blood,
        "noise_blood": _noise(img, blood_core) / blood,
        "texture_myo": float(q75 - q25) / blood,
        "edge_mm": (blood - myo) / max(grad, 1e-9),
        "spec_slope": slope,
        "hf_share": hf,
    }


def stack_stats(px: SeriesPixels) -> dict[str, float]:
    """Median over mid-ventricular slices (30-70 % of the moving extent) and three frames of each."""
    center = heart_center([px])
    axis = oriented_axis(px.normal)
    order = np.argsort(px.positions @ axis)
    first, last = moving_extent(px, order)
    lo, hi = int(round(first + 0.3 * (last - first))), int(round(first + 0.7 * (last - first)))
    n_t = px.data.shape[1]
    rows = []
    for i in range(lo, hi + 1):
        s = int(order[i])
        r, c = patient_to_pixel(px, s, center)
        f = px.spacing / GRID_MM
        for t in (0, n_t // 3, (2 * n_t) // 3):
            st = slice_stats(_resample(px.data[s, t], px.spacing), r * f, c * f)
            if st is not None:
                rows.append(st)
    if not rows:
        return {k: float("nan") for k, _ in STAT_NAMES}
    return {k: float(np.nanmedian([row[k] for row in rows])) for k, _ in STAT_NAMES}


def realism_table(real: list[dict[str, float]], phantom: list[dict[str, float]]) -> tuple[list[tuple], float]:
    """Rows (key, label, real mean, real sd, phantom mean, phantom sd, d) and the mean |d|."""
    rows, ds = [], []
    for key, label in STAT_NAMES:
        a = np.array([s[key] for s in real], dtype=float)
        b = np.array([s[key] for s in phantom], dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        pooled = np.sqrt(0.5 * (a.var(ddof=1) + b.var(ddof=1))) + 1e-9
        d = float((b.mean() - a.mean()) / pooled)
        ds.append(abs(d))
        rows.append((key, label, a.mean(), a.std(ddof=1), b.mean(), b.std(ddof=1), d))
    return rows, float(np.mean(ds))


# ------------------------------------------------------------------------------------------------ classifier
def frame_features(img: np.ndarray) -> np.ndarray:
    """Eight simple statistics of one clip frame (values in [0, 1])."""
    p10, p50, p90 = np.percentile(img, [10, 50, 90])
    gy, gx = np.gradient(img)
    d = img[:, 1:] - img[:, :-1]
    return np.array(
        [
            img.mean(),
            img.std(),
            p10,
            p50,
            p90,
            (img < 0.05).mean(),
            np.hypot(gy, gx).mean(),
            1.4826 * np.median(np.abs(d - np.median(d))),
        ],
        dtype=np.float32,
    )


def clip_samples(stacks: list[Stack], label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    pix, feats, ys, groups = [], [], [], []
    for st in stacks:
        frames = st.clip.reshape(-1, *st.clip.shape[-2:])
        pooled = frames.reshape(len(frames), 16, 4, 16, 4).mean(axis=(2, 4)).reshape(len(frames), -1)
        pix.append(pooled)
        feats.append(np.stack([frame_features(f) for f in frames]))
        ys += [label] * len(frames)
        groups += [st.name] * len(frames)
    return np.concatenate(pix), np.concatenate(feats), np.array(ys), groups


def group_cv_auc(x: np.ndarray, y: np.ndarray, groups: list[str], folds: int) -> float:
    """AUC of pooled out-of-fold scores of a standardised logistic regression, grouped by stack."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    score = np.zeros(len(y))
    for tr, te in GroupKFold(n_splits=folds).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced"))
        model.fit(x[tr], y[tr])
        score[te] = model.predict_proba(x[te])[:, 1]
    return float(roc_auc_score(y, score))


def _stratified_groups(real: list[Stack], phantom: list[Stack], folds: int) -> dict[str, str]:
    """Fold id per stack so that every fold holds real and phantom stacks (GroupKFold on these ids)."""
    out = {}
    for i, st in enumerate(real):
        out[st.name] = f"fold{i % folds}"
    for i, st in enumerate(phantom):
        out[st.name] = f"fold{i % folds}"
    return out


# ------------------------------------------------------------------------------------------------ figure
def side_by_side(real: list[Stack], phantom: list[Stack], path: Path, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [("phantom", s) for s in phantom[:n]] + [("real", s) for s in real[:n]]
    cols = [(lv, t) for lv in range(3) for t in (0, 6)]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.6 * len(cols), 1.6 * len(picks)))
    for i, (kind, st) in enumerate(picks):
        for j, (lv, t) in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(st.clip[lv, t], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{['base', 'mid', 'apex'][lv]} t={t}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{kind}\n{st.name[-6:]}", fontsize=7)
    fig.suptitle("SAX clips as ingest makes them: phantom (top) and real Sunnybrook (bottom)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phantom", type=Path, required=True, help="a `cmr synth` output folder")
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "realdata")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cmr_realism"), help="scratch catalogs and clips")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--figure", type=Path, default=None, help="write a side-by-side figure of SAX clips here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    def work_for(p: Path) -> Path:
        return args.work / hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:10]

    real = load_stacks(args.real, work_for(args.real))
    phantom = load_stacks(args.phantom, work_for(args.phantom))
    print(f"stacks: real {len(real)} ({args.real}), phantom {len(phantom)} ({args.phantom})")

    rs = [stack_stats(s.px) for s in real]
    ps = [stack_stats(s.px) for s in phantom]
    rows, dist = realism_table(rs, ps)
    print("\n| statistic | real (mean ± sd) | phantom (mean ± sd) | d |")
    print("|---|---|---|---|")
    for _, label, rm, rsd, pm, psd, d in rows:
        print(f"| {label} | {rm:.3f} ± {rsd:.3f} | {pm:.3f} ± {psd:.3f} | {d:+.2f} |")
    print(f"\ndistance (mean |d| over {len(rows)} statistics): {dist:.2f}")

    xr_pix, xr_f, yr, gr = clip_samples(real, 0)
    xp_pix, xp_f, yp, gp = clip_samples(phantom, 1)
    fold_of = _stratified_groups(real, phantom, args.folds)
    groups = [fold_of[g] for g in gr + gp]
    y = np.concatenate([yr, yp])
    auc_pix = group_cv_auc(np.concatenate([xr_pix, xp_pix]), y, groups, args.folds)
    auc_f = group_cv_auc(np.concatenate([xr_f, xp_f]), y, groups, args.folds)
    print(f"\nphantom-vs-real logistic regression on SAX clip frames ({len(y)} frames, {args.folds}-fold by stack):")
    print(f"  AUC raw pixels (16x16): {auc_pix:.3f}")
    print(f"  AUC 8 image statistics: {auc_f:.3f}")
    if args.figure:
        side_by_side(real, phantom, args.figure)
        print(f"\nfigure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
