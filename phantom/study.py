"""Render and write one study: plan the series, image the scene, write DICOM files."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phantom.anatomy import Heart
from phantom.appearance import draw_appearance, render_cine
from phantom.body import make_body
from phantom.conditions import CaseSpec, build_case
from phantom.dicom_writer import (
    Instance,
    SeriesEncoder,
    SeriesHeader,
    StudyHeader,
    UidSource,
    encode_pixels,
    series_base,
)
from phantom.measure import Measurements, findings, measure
from phantom.patients import Patient
from phantom.planes import Matrix, Plane, choose_matrix, lax_plane, localizer_planes, sax_stack
from phantom.protocol import SeriesPlan, plan_series
from phantom.render import bias_field, lookup, t1_map
from phantom.scene import Scene

LGE_PHASE = 0.72  # mid-diastole
NOISE_FACTOR = {"cine": 1.0, "lge": 1.4, "localizer": 1.5}


@dataclass
class StudyRequest:
    """What the archive asks for: who, where, when, what disease."""

    index: int
    patient: Patient
    site_name: str
    site: dict
    conditions: list[str]
    severity: str
    date: dt.date
    fault: str | None = None
    prior_date: dt.date | None = None
    prior_severity: str | None = None


@dataclass
class WrittenFile:
    path: Path  # relative to the archive root
    view: str
    kind: str
    series_number: int
    slice_index: int
    phase_index: int
    n_phases: int


@dataclass
class StudyRecord:
    request: StudyRequest
    header: StudyHeader
    spec: CaseSpec
    measurements: Measurements
    findings: dict[str, bool]
    views: set[str]
    lv_center: np.ndarray
    study_dir: Path
    files: list[WrittenFile] = field(default_factory=list)
    n_bytes: int = 0


def _heart_low_z(heart: Heart) -> float:
    """Lowest point (z, mm) of the LV epicardium, where the heart rests on the diaphragm."""
    u = np.linspace(0, heart.apex_u + heart.ta0, 16)
    th = np.deg2rad(np.arange(0, 360, 20.0))
    uu, tt = np.meshgrid(u, th, indexing="ij")
    lp = heart.le0 + heart.ta0
    r = (heart.re0 + heart.spec.wall_mm) * np.sqrt(np.clip(1 - ((uu - heart.uc0) / lp) ** 2, 0, None))
    loc = np.stack([uu.ravel(), (r * np.cos(tt)).ravel(), (r * np.sin(tt)).ravel()], axis=1)
    return float(heart.to_patient(loc)[:, 2].min())


def _safe(desc: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", desc).strip("_") or "series"


class StudyWriter:
    """Holds the per-study acquisition state while its series are rendered and written."""

    def __init__(self, out_dir: Path, req: StudyRequest, rng: np.random.Generator, uids: UidSource):
        self.out_dir, self.req, self.rng, self.uids = out_dir, req, rng, uids
        site = req.site
        self.site = site
        p = req.patient
        self.spec = build_case(rng, req.conditions, req.severity)
        center = np.array([25.0, -5.0, -20.0]) + rng.normal(0, [10, 8, 12]) + rng.uniform(-40, 40, 3) * [0.4, 0.2, 1]
        self.heart = Heart(self.spec, p.bsa, rng, center)
        bmi = p.weight_kg / (p.height_cm / 100) ** 2
        self.body = make_body(rng, self.heart.point(self.heart.mid_u), _heart_low_z(self.heart), p.sex, bmi)
        self.scene = Scene(self.heart, self.body)
        self.hr = int(round(self.spec.heart_rate))
        self.rr = 60000.0 / self.hr
        self.field = float(site["field_strength"])
        self.noise = float(rng.uniform(*site["noise"]))
        self.scale = float(rng.uniform(*site["signal_scale"]))
        self.bias = float(rng.uniform(*site["bias"]))
        self.tilt = rng.normal(0, 1, 3)
        self.matrix = choose_matrix(rng, site)
        self.thickness = float(rng.uniform(*site["slice_thickness"]) // 0.5 * 0.5)
        self.gap = float(round(rng.uniform(*site["slice_gap"]) * 2) / 2)
        self.n_phases = int(rng.integers(site["phases"][0], site["phases"][1] + 1))
        self.sax = sax_stack(self.heart, self.matrix, self.thickness, self.gap, rng)
        self.lax = {v: lax_plane(self.heart, v, self.matrix, self.thickness, rng) for v in ("4ch", "2ch", "3ch")}
        acc = site["accession_format"].format(int(rng.integers(10**6, 10**7 - 1)))
        start = dt.time(int(rng.integers(7, 18)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
        self.header = StudyHeader(
            patient=p,
            study_uid=uids(),
            frame_of_reference_uid=uids(),
            accession=acc,
            study_id=str(int(rng.integers(1, 99999))),
            date=req.date,
            time=start,
            description=str(rng.choice(site["study_descriptions"])),
            institution=site["institution"],
            station=site["station"],
            manufacturer=site["manufacturer"],
            model=str(rng.choice(site["models"])),
            software=str(rng.choice(site["software"])),
            serial=str(int(rng.integers(10000, 99999))),
            field_strength=self.field,
            referring=str(rng.choice(site["referring"])),
            heart_rate=self.hr,
        )
        self.study_dir = Path("dicom", req.site_name, p.patient_id, acc)
        self.minutes = 0.0
        # Appearance and noise draw from their own stream, so how a study looks never moves its geometry, headers
        # or ground truth; and never from the case: the diagnosis lives in anatomy and motion.
        self.render_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        self.app = draw_appearance(self.render_rng, site)

    # ----------------------------------------------------------------------------------------------
    def write(self) -> StudyRecord:
        rng = self.rng
        plans = plan_series(rng, self.site, len(self.sax))
        m = measure(self.heart)
        rec = StudyRecord(
            self.req,
            self.header,
            self.spec,
            m,
            findings(m, self.heart),
            {p.view for p in plans},
            self.heart.point(self.heart.mid_u),
            self.study_dir,
        )
        odd_target = None
        if self.req.fault == "odd_matrix":
            cines = [i for i, p in enumerate(plans) if p.kind == "cine"]
            odd_target = cines[int(rng.integers(len(cines)))] if cines else None
        step = self.site["series_number_step"]
        for i, plan in enumerate(plans):
            number = (i + 1) * step + (1 if step > 1 else 0)
            self._write_series(rec, plan, number, odd=(i == odd_target))
        return rec

    def _series_header(self, plan: SeriesPlan, number: int, n_phases: int) -> SeriesHeader:
        rng = self.rng
        self.minutes += float(rng.uniform(0.5, 3.0)) + (10.0 if plan.kind == "lge" and self.minutes < 25 else 0)
        t = (dt.datetime.combine(self.req.date, self.header.time) + dt.timedelta(minutes=self.minutes)).time()
        three_t = self.field > 2
        seq = self.site["sequence_names"][plan.kind].format(ph=n_phases)
        tr, te, flip = {
            "cine": (3.0 if three_t else 2.8, 1.4, 45 if three_t else 60),
            "lge": (6.5, 3.2, 25),
            "t1map": (2.7, 1.1, 35),
            "localizer": (3.2, 1.4, 50),
        }[plan.kind]
        ti = float(rng.uniform(350, 420) if three_t else rng.uniform(260, 330)) if plan.kind == "lge" else None
        ts = self.site["transfer_syntax"]["cine" if plan.kind == "cine" else "single"]
        spacing = self.thickness + self.gap if plan.view in ("sax", "lge_sax") and plan.sax_slices is None else None
        return SeriesHeader(
            uid=self.uids(),
            number=number,
            description=plan.description,
            protocol=plan.description if rng.random() < 0.7 else plan.description.replace(" ", "_").lower(),
            kind=plan.kind,
            sequence_name=seq,
            transfer_syntax=ts,
            time=t,
            tr=tr,
            te=te,
            flip=flip,
            ti=ti,
            n_phases=n_phases,
            spacing_between_slices=spacing,
            drop_trigger_time=self.req.fault == "missing_trigger_time" and plan.kind == "cine",
        )

    def _planes(self, plan: SeriesPlan) -> list[Plane]:
        if plan.kind == "localizer":
            return localizer_planes(self.heart, Matrix(256, 256, round(float(self.rng.uniform(1.5, 1.8)), 4)), self.rng)
        if plan.kind == "t1map":
            n = len(self.sax)
            idx = sorted({n // 4, n // 2, (3 * n) // 4}) if self.rng.random() < 0.6 else [n // 2]
            return [self.sax[k] for k in idx]
        if plan.view in ("sax", "lge_sax"):
            planes = self.sax if plan.sax_slices is None else [self.sax[k] for k in plan.sax_slices]
            if plan.view == "lge_sax":
                mx = choose_matrix(self.rng, self.site)
                planes = [p.with_size(mx.rows, mx.cols, mx.spacing) for p in planes]
            return planes
        if plan.view == "lge_lax":
            mx = choose_matrix(self.rng, self.site)
            return [self.lax[v].with_size(mx.rows, mx.cols, mx.spacing) for v in plan.lax_views]
        return [self.lax[plan.view]]

    def _write_series(self, rec: StudyRecord, plan: SeriesPlan, number: int, odd: bool) -> None:
        rng = self.rng
        planes = self._planes(plan)
        n_ph = self.n_phases if plan.kind == "cine" else 1
        series = self._series_header(plan, number, n_ph)
        encoder = SeriesEncoder(series_base(self.header, series), series)
        delay = float(rng.uniform(5, 25))
        triggers = (
            [delay + k * self.rr / n_ph for k in range(n_ph)]
            if plan.kind == "cine"
            else [LGE_PHASE * self.rr]
            if plan.kind in ("lge", "t1map")
            else [None]
        )
        phases = [(t or LGE_PHASE * self.rr) / self.rr for t in triggers]
        contrast = {"cine": "bssfp", "lge": "lge", "t1map": "t1map", "localizer": "localizer"}[plan.kind]
        if contrast == "bssfp":
            lut = self.app.bssfp
        else:
            lut = lookup(contrast, self.spec.conditions, self.field)
            lut = lut if contrast == "t1map" else lut * self.app.lge_jitter
        margin = 0
        if plan.kind == "cine" and self.render_rng.random() < self.app.wrap_prob:
            margin = int(planes[0].rows * float(self.render_rng.uniform(0.06, 0.2)))
        scale = self.scale * float(rng.uniform(0.85, 1.15))
        noise = self.noise * NOISE_FACTOR.get(plan.kind, 1.0)
        series_dir = self.study_dir / f"{number}_{_safe(plan.description)}"
        series_shift = rng.normal(0, [1.5, 1.5, 2.5])
        odd_slice = int(rng.integers(len(planes))) if odd else -1
        odd_phase = int(rng.integers(1, n_ph)) if odd and n_ph > 1 else 0
        instance = 0
        for s_idx, plane in enumerate(planes):
            shift = (
                rng.normal(0, [1.5, 1.5, 2.5]) * self.app.misregistration
                if plan.view in ("sax", "lge_sax")
                else series_shift
            )
            frames = self._render(plane, phases, shift, plan.kind, lut, scale, noise, margin)
            frame_planes = [plane] * n_ph
            frame_list = list(frames)
            if s_idx == odd_slice:  # planted fault: one frame reconstructed at another matrix
                cols = plane.cols + 32
                rows = int(round(plane.rows * cols / plane.cols / 2) * 2)
                op = plane.with_size(rows, cols, round(plane.spacing * plane.cols / cols, 4))
                frame_list[odd_phase] = self._render(
                    op, [phases[odd_phase]], shift, plan.kind, lut, scale, noise, margin
                )[0]
                frame_planes[odd_phase] = op
            values = self._encode(frame_list, series.transfer_syntax)
            acq = s_idx + 1 if plan.view == "sax" else 1
            for k in range(n_ph):
                instance += 1
                inst = Instance(self.uids(), instance, frame_planes[k], triggers[k], acq)
                ctime = (
                    dt.datetime.combine(self.req.date, series.time) + dt.timedelta(seconds=12 * s_idx + 0.4 * k)
                ).time()
                data = encoder.encode(inst, frame_list[k], values[k], ctime)
                name = self.site["file_name"].format(series=number, instance=inst.number)
                rel = series_dir / name
                path = self.out_dir / rel
                if k == 0 and s_idx == 0:
                    path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                rec.n_bytes += len(data)
                rec.files.append(WrittenFile(rel, plan.view, plan.kind, number, s_idx, k, n_ph))

    def _render(
        self,
        plane: Plane,
        phases: list[float],
        shift: np.ndarray,
        kind: str,
        lut: np.ndarray,
        scale: float,
        noise: float,
        margin: int = 0,
    ) -> np.ndarray:
        """Image a plane; ``margin`` rows beyond each edge of the FOV are imaged too and fold back in."""
        if margin:
            plane = plane.with_size(plane.rows + 2 * margin, plane.cols, plane.spacing)
        if kind == "t1map":
            return t1_map(self.scene.labels(plane, phases, shift)[0], lut, self.render_rng)
        # two sub-slices at +-1/4 of the slice thickness: the partial volume of a thick slice
        quarter = plane.thickness / 4.0
        labels = self.scene.labels(plane, phases, shift, depths=(-quarter, quarter))
        bias = bias_field(plane.points(), self.body, self.heart.point(self.heart.mid_u), self.bias, self.tilt)
        return render_cine(
            labels,
            lut,
            self.app,
            bias,
            scale,
            noise,
            self.render_rng,
            phases=phases if kind == "cine" else None,
            es_phase=self.heart.es_phase,
            margin=margin,
            spacing=plane.spacing,
        )

    @staticmethod
    def _encode(frames: list[np.ndarray], syntax: str) -> list[bytes]:
        shapes = {f.shape for f in frames}
        if len(shapes) == 1:
            return encode_pixels(np.stack(frames), syntax)
        return [encode_pixels(f[None], syntax)[0] for f in frames]
