from __future__ import annotations

import json

from cmrclip.evaluate import evaluate
from cmrclip.metrics import FEW_SHOTS
from cmrclip.prompts import DIAGNOSES, FINDINGS
from cmrclip.train import train
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


def test_evaluate_writes_report_with_stable_keys(archive, tmp_path):
    records, labels = archive
    ckpt = train(records, tmp_path / "run", epochs=1, batch_size=4, progress=False, holdout_site="site_b",
                 model_overrides=TINY)
    truth = {uid: _truth(lab) for uid, lab in labels.items()}
    out = tmp_path / "eval"
    # The trained checkpoint stands in as the "static" baseline too: only the plumbing is under test here.
    result = evaluate(ckpt, records, truth, split="test", baselines={"static": ckpt}, out_dir=out, episodes=5)
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

