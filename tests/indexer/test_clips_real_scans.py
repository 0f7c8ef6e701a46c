"""Preprocessing rules that real scans break: short cines, a heart that hardly moves, base and apex without geometry.

Each test builds the case that broke the old rule from a phantom study (whose ground truth is exact) and, where
it applies, checks the four real Sunnybrook stacks too.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cmrclip.clips import CLIP_SIZE, CLIP_SPACING_MM
from indexer.clips.heart import apex_sign, heart_center, stack_axis
from indexer.clips.preprocess import SeriesInput, make_clips
from indexer.dicom.assemble import assemble_series, group_by_study
from indexer.dicom.headers import read_headers
from indexer.dicom.pixels import SeriesPixels, load_series
from indexer.dicom.views import APEX_PRIOR, MIN_CINE_PHASES, SeriesGeometry, classify, name_hint, oriented_axis

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "sunnybrook"


def _sax_inputs(study_dir: Path) -> tuple[str, list[SeriesInput]]:
    """The SAX cine series of one phantom study as preprocessing inputs (split stacks joined by make_clips)."""
    headers = [h for f in sorted(study_dir.rglob("*")) if f.is_file() for h in read_headers(f)]
    ((study_uid, by_series),) = group_by_study(headers).items()
    inputs = []
    for frames in by_series.values():
        s = assemble_series(frames)
        hint = name_hint(s.description)
        if hint.plane == "sax" and not hint.lge and s.n_phases >= 4:
            first = s.frames[0]
            grid = [[f.path, i, j, f.frame] for i, row in enumerate(s.grid) for j, f in enumerate(row)]
            inputs.append(SeriesInput("sax", s.series_number or 0, first.rows, first.columns,
                                      first.pixel_spacing, grid))
    return study_uid, inputs


@pytest.fixture(scope="module")
def phantom_sax(phantom_archive) -> list[tuple[dict, list[SeriesInput]]]:
    with (phantom_archive / "ground_truth.csv").open(newline="") as fh:
        truth = {r["study_uid"]: r for r in csv.DictReader(fh)}
    out = []
    for study_dir in sorted(p for p in (phantom_archive / "dicom").glob("*/*/*") if p.is_dir()):
        uid, inputs = _sax_inputs(study_dir)
        if inputs:
            out.append((truth[uid], inputs))
    assert len(out) >= 4
    return out


def _keep_phases(inputs: list[SeriesInput], phases: list[int]) -> list[SeriesInput]:
    """The same series with only the given phases (renumbered), as research exports hold ED and ES only."""
    out = []
    for s in inputs:
        frames = [[p, sl, phases.index(ph), fr] for p, sl, ph, fr in s.frames if ph in phases]
        out.append(SeriesInput(s.view, s.series_number, s.rows, s.columns, s.pixel_spacing, frames))
    return out


def _lv(truth: dict) -> np.ndarray:
    return np.array([float(truth[f"lv_center_{k}"]) for k in "xyz"])


def _in_plane_mm(found: np.ndarray, true: np.ndarray, normal: np.ndarray) -> float:
    offset = found - true
    return float(np.linalg.norm(offset - (offset @ normal) * normal))


def test_two_and_three_phase_short_axis_cines_are_classified_as_cines():
    stack = dict(key="s", description="", normal=oriented_axis(APEX_PRIOR), n_slices=10)
    axis = oriented_axis(APEX_PRIOR)
    for phases in (2, 3):
        assert classify(SeriesGeometry(n_phases=phases, **stack), axis).view == "sax"
    # a still stack with an inversion time is still LGE, whatever the name does not say
    assert classify(SeriesGeometry(n_phases=1, has_inversion=True, **stack), axis).view == "lge_sax"
    assert MIN_CINE_PHASES == 2


def test_end_diastole_and_end_systole_only_still_make_a_sax_clip(phantom_sax):
    truth, inputs = phantom_sax[0]
    n_phases = max(f[2] for f in inputs[0].frames) + 1
    for kept in ([0, n_phases // 3], [0, n_phases // 6, n_phases // 3]):
        result = make_clips(_keep_phases(inputs, kept))
        assert result.views["sax"].shape == (3, 16, CLIP_SIZE, CLIP_SIZE)
        # the cine still moves: ED and ES differ in the clip
        assert float(np.abs(result.views["sax"][1, 0] - result.views["sax"][1, 8]).mean()) > 0.01
        normal = load_series(inputs[0].frames, inputs[0].rows, inputs[0].columns, inputs[0].pixel_spacing).normal
        assert _in_plane_mm(result.center, _lv(truth), normal) < CLIP_SIZE * CLIP_SPACING_MM / 8


def test_a_single_phase_cine_says_why_it_is_unusable(phantom_sax):
    _, inputs = phantom_sax[0]
    result = make_clips(_keep_phases(inputs, [0]))
    assert "sax" not in result.views
    reason = result.failure_reason()
    assert "sax series has 1 phase(s)" in reason and f"at least {MIN_CINE_PHASES}" in reason


def test_crop_is_centred_on_a_heart_that_does_not_move(phantom_sax):
    """Every phase replaced by end-diastole: a motion-led locator has nothing to follow; anatomy still finds the LV."""
    errors = []
    for truth, inputs in phantom_sax:
        px = load_series(inputs[0].frames, inputs[0].rows, inputs[0].columns, inputs[0].pixel_spacing)
        if px.data.shape[0] < 4:
            continue  # a stack stored one series per slice: make_clips joins it, covered by the ingest tests
        frozen = SeriesPixels(np.repeat(px.data[:, :1], px.data.shape[1], axis=1), px.positions, px.row_dirs,
                              px.col_dirs, px.spacing, [])
        errors.append(_in_plane_mm(heart_center([frozen]), _lv(truth), px.normal))
    assert errors and max(errors) < CLIP_SIZE * CLIP_SPACING_MM / 8, errors


def _rotated(px: SeriesPixels, rotation: np.ndarray) -> SeriesPixels:
    return SeriesPixels(px.data, px.positions @ rotation.T, px.row_dirs @ rotation.T, px.col_dirs @ rotation.T,
                        px.spacing, [])


def _rotation_to_perpendicular(normal: np.ndarray) -> np.ndarray:
    """A rotation taking ``normal`` onto a direction perpendicular to APEX_PRIOR (so geometry cannot tell)."""
    target = np.cross(APEX_PRIOR, [0.0, 0.0, 1.0])
    target /= np.linalg.norm(target)
    v = np.cross(normal, target)
    c = float(normal @ target)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _stacks() -> list[tuple[str, SeriesPixels]]:
    out = []
    for stack_dir in sorted(REALDATA.glob("*/*")):
        s = assemble_series([h for f in sorted(stack_dir.glob("*.dcm")) for h in read_headers(f)])
        grid = [[f.path, i, j, f.frame] for i, row in enumerate(s.grid) for j, f in enumerate(row)]
        first = s.frames[0]
        out.append((stack_dir.parent.name, load_series(grid, first.rows, first.columns, first.pixel_spacing)))
    return out


def test_base_and_apex_from_the_images_when_geometry_cannot_tell(phantom_sax):
    cases = []
    for _, inputs in phantom_sax:
        px = load_series(inputs[0].frames, inputs[0].rows, inputs[0].columns, inputs[0].pixel_spacing)
        if px.data.shape[0] >= 4:
            cases.append(("phantom", px))
    if REALDATA.is_dir():
        cases += _stacks()
    for name, px in cases:
        center = heart_center([px])
        truth = oriented_axis(px.normal)  # these stacks' headers are right: the geometry is the truth
        sign = apex_sign(px, center)
        assert sign != 0 and np.allclose(sign * px.normal, truth), name
        # the same images with the slices' order along the normal reversed: the images must say so
        flipped = SeriesPixels(px.data[::-1].copy(), px.positions, px.row_dirs, px.col_dirs, px.spacing, [])
        assert apex_sign(flipped, center) == -sign, name
        # geometry withheld: the stack turned so its normal says nothing about the apex
        rotation = _rotation_to_perpendicular(px.normal)
        turned = _rotated(px, rotation)
        assert abs(float(turned.normal @ APEX_PRIOR)) < 1e-6
        assert np.allclose(stack_axis(turned, rotation @ center), rotation @ truth, atol=1e-6), name
