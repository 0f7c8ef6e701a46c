from __future__ import annotations

import json

import numpy as np
import pytest

from cmr.realdata import DEFAULT_REALDATA, real_stacks
from cmrclip.prompts import DIAGNOSES, FINDINGS
from cmrclip.train.config import TrainConfig
from cmrclip.train.evaluate import evaluate
from cmrclip.train.loop import train
from cmrclip.train.metrics import FEW_SHOTS
from cmrclip.train.realdata import RealStacks, percentile, place_real_stacks, youden_threshold
from cmrclip.train.report import real_stacks_section
from tests.cmrclip.conftest import TINY

KEYS = {
    "zero_shot_auc", "zero_shot_macro_auc", "diagnosis_auc", "diagnosis_precision_at_10", "few_shot_auc",
    "retrieval", "probe_auc",
}


def _truth(labels: dict[str, bool]) -> dict[str, object]:
    conditions = ["dilated_cardiomyopathy"] if labels["dilated"] and labels["reduced_function"] else []
    return {
        "lv_dilation": labels["dilated"],
        "findings": "lv_systolic_dysfunction" if labels["reduced_function"] else "",
        "lge_present": int(labels["lge"]),
        "conditions": ";".join(conditions),
        "views": "sax;2ch;3ch;4ch;lge_sax;lge_lax",
    }


@pytest.fixture(scope="module")
def evaluated(archive, tmp_path_factory):
    """One tiny model trained and evaluated (with the real stacks placed when ../shared/realdata is there)."""
    records, labels = archive
    tmp = tmp_path_factory.mktemp("evaluate")
    config = TrainConfig(tmp / "run", epochs=1, batch_size=4, progress=False, holdout_site="site_b",
                         model_overrides=TINY)
    ckpt = train(records, config)
    truth = {uid: _truth(lab) for uid, lab in labels.items()}
    out = tmp / "eval"
    with real_stacks(None) as real:  # the default folder, or a note that it is absent
        # The trained checkpoint stands in as the "static" baseline too: only the plumbing is under test here.
        result = evaluate(ckpt, records, truth, split="test", baselines={"static": ckpt}, out_dir=out, episodes=5,
                          realdata=real)
    return result, out


def test_evaluate_writes_report_with_stable_keys(evaluated):
    result, out = evaluated
    assert set(result) >= KEYS and result["holdout_site"] == "site_b"
    assert set(result["zero_shot_auc"]) == set(FINDINGS) and set(result["diagnosis_auc"]) == set(DIAGNOSES)
    assert set(result["few_shot_auc"]) <= {str(k) for k in FEW_SHOTS}
    assert {"t2v_r1", "v2t_median_rank"} <= set(result["retrieval"])
    assert set(result["baselines"]) == {"static", "untrained"}
    assert set(result["baselines"]["untrained"]) >= KEYS and set(result["external"]) >= KEYS
    assert json.loads((out / "metrics.json").read_text()) == result
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "external" in report
    assert (out / "roc_findings.png").is_file() and (out / "recall_at_k.png").is_file()
    assert "## Real stacks (shared/realdata)" in report and result["realdata"]["source"] == "shared/realdata"


@pytest.mark.skipif(not DEFAULT_REALDATA.is_dir(), reason="../shared/realdata not present")
def test_real_stacks_are_placed_one_row_each(evaluated):
    result, out = evaluated
    real = result["realdata"]
    names = [s["name"] for s in real["stacks"]]
    assert real["n_stacks"] == len(names) == 4 and not real["notes"]
    folders = [p for p in DEFAULT_REALDATA.glob("sunnybrook/*/*") if p.is_dir()]
    assert sorted(names) == sorted(f"{p.parent.name}/{p.name}" for p in folders)
    assert {"thresholds", "summary", "n_dilated_poorly_contracting", "n_top_dilated_cardiomyopathy"} <= set(real)
    for stack in real["stacks"]:
        assert stack["top_diagnosis"] in DIAGNOSES and isinstance(stack["dilated_poorly_contracting"], bool)
        assert set(stack["diagnosis_scores"]) == set(DIAGNOSES) and set(stack["finding_scores"]) == set(FINDINGS)
        assert all(0 <= p <= 100 for p in stack["finding_percentiles"].values())
        assert len(stack["nearest"]) == min(5, result["n_studies"])
        assert {"study_uid", "cosine", "diagnoses"} <= set(stack["nearest"][0])
    assert real["summary"].startswith(f"{real['n_dilated_poorly_contracting']} of 4 stacks score as dilated")
    section = (out / "report.md").read_text().split("## Real stacks (shared/realdata)")[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| stack")]
    assert [row.split(" | ")[0][2:] for row in rows] == names
    assert f"**{real['summary']}.**" in section


def test_real_stacks_section_says_why_it_is_empty(tmp_path):
    with real_stacks(tmp_path / "nowhere") as real:
        assert real.stacks == {} and "no folder" in real.notes[0]
        placed = place_real_stacks(None, real, *([None] * 5))
    assert placed["n_stacks"] == 0 and placed["stacks"] == []
    section = "\n".join(real_stacks_section(placed))
    assert f"## Real stacks ({tmp_path / 'nowhere'})" in section and "Note: skipped: no folder" in section
    assert real_stacks_section(None) == []
    assert "No real stack was placed" in "\n".join(real_stacks_section(place_real_stacks(
        None, RealStacks("x"), *([None] * 5))))


def test_phantom_threshold_is_a_score_of_the_split():
    assert youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.3)
    # a split the model cannot separate still gives one of its scores, never roc_curve's +inf
    assert np.isfinite(youden_threshold(np.array([1, 0, 1, 0]), np.array([0.1, 0.2, 0.3, 0.4])))
    assert youden_threshold(np.array([1, 1]), np.array([0.1, 0.2])) is None
    assert percentile(np.array([1.0, 2.0, 3.0]), 2.0) == 50.0 and percentile(np.array([1.0]), 5.0) == 100.0
