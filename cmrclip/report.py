"""``report.md`` from evaluation results: summary, per-finding and per-diagnosis tables, figures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmrclip.plots import plot_few_shot, plot_recall_bars, plot_roc_curves

_SUMMARY = (
    ("zero-shot macro AUC", lambda t: t.get("zero_shot_macro_auc")),
    ("zero-shot motion AUC", lambda t: t.get("zero_shot_motion_auc")),
    ("mean diagnosis AUC", lambda t: _mean(t.get("diagnosis_auc", {}))),
    ("mean diagnosis P@10", lambda t: _mean(t.get("diagnosis_precision_at_10", {}))),
    ("mean probe AUC", lambda t: _mean(t.get("probe_auc", {}))),
    ("t2v R@10", lambda t: t.get("retrieval", {}).get("t2v_r10")),
    ("v2t R@10", lambda t: t.get("retrieval", {}).get("v2t_r10")),
)


def write_report(
    results: Mapping[str, Any], curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out_dir: Path
) -> Path:
    out_dir = Path(out_dir)
    models = {"model": results, **results.get("baselines", {})}
    lines = [
        "# CMR-CLIP evaluation",
        "",
        f"Checkpoint `{results['checkpoint']}`, split `{results['split']}`"
        + (f", site `{results['site']}`" if results.get("site") else "")
        + f", {results['n_studies']} studies (support/probe training set: {results['n_train']}).",
        "",
        "## Summary",
        "",
        *_table(["metric", *models], [[name, *(fn(t) for t in models.values())] for name, fn in _SUMMARY]),
    ]
    if "external" in results:
        ext = {name: t["external"] for name, t in models.items() if "external" in t}
        lines += ["", f"## Held-out site `{results['holdout_site']}` (external)", "",
                  *_table(["metric", *ext], [[name, *(fn(t) for t in ext.values())] for name, fn in _SUMMARY])]
    lines += ["", "## Zero-shot findings (AUC)", "", *_keyed_table(models, "zero_shot_auc"), "",
              "![ROC curves](roc_findings.png)", ""]
    plot_roc_curves(curves, out_dir / "roc_findings.png", "zero-shot findings")
    lines += ["## Diagnoses", "", "Zero-shot AUC (prompt ensembles):", "", *_keyed_table(models, "diagnosis_auc"),
              "",
              "Precision@10 of the plain-language query (over the top min(10, positives) studies when the split"
              " holds fewer than 10 with the diagnosis):", "",
              *_keyed_table(models, "diagnosis_precision_at_10"), "", "Average precision of the query:", "",
              *_keyed_table(models, "diagnosis_ap"), "", "Linear probe AUC (frozen embeddings):", "",
              *_keyed_table(models, "probe_auc"), ""]
    few = results.get("few_shot_auc", {})
    if few:
        shots = sorted(few, key=int)
        names = sorted({f for per in few.values() for f in per})
        lines += ["## Few-shot prototype classifier (AUC, model)", "",
                  *_table(["finding", *shots], [[f, *(few[s].get(f) for s in shots)] for f in names]), "",
                  "![few-shot](few_shot.png)", ""]
        plot_few_shot({int(s): {f: np.nan if v is None else v for f, v in few[s].items()} for s in shots},
                      out_dir / "few_shot.png")
    retrieval = {name: t.get("retrieval", {}) for name, t in models.items()}
    if any(retrieval.values()):
        keys = sorted({k for r in retrieval.values() for k in r})
        lines += ["## Retrieval (impression as the text)", "",
                  *_table(["metric", *retrieval], [[k, *(r.get(k) for r in retrieval.values())] for k in keys]),
                  "", "![recall@K](recall_at_k.png)", ""]
        plot_recall_bars(
            {n: {k: np.nan if v is None else v for k, v in r.items()} for n, r in retrieval.items()},
            out_dir / "recall_at_k.png",
        )
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _mean(values: Mapping[str, float | None]) -> float | None:
    finite = [v for v in values.values() if v is not None]
    return float(np.mean(finite)) if finite else None


def _keyed_table(models: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    names = list(next(iter(models.values())).get(key, {}))
    return _table(["name", *models], [[n, *(t.get(key, {}).get(n) for t in models.values())] for n in names])


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
