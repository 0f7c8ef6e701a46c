"""``report.md`` from evaluation results: summary, per-finding and per-diagnosis tables, figures, real stacks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cmrclip.train.plots import plot_few_shot, plot_recall_bars, plot_roc_curves
from cmrclip.train.realdata import DILATED_POORLY_CONTRACTING, KIND, SHOWN

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
    """Write ``out_dir/report.md`` and its figures for ``evaluate``'s results (the model and its baselines)."""
    out_dir = Path(out_dir)
    models = {"model": results, **results.get("baselines", {})}
    lines = [
        *_summary(results, models),
        *_findings(models, curves, out_dir),
        *_diagnoses(models),
        *_few_shot(results.get("few_shot_auc", {}), out_dir),
        *_retrieval(models, out_dir),
        *real_stacks_section(results.get("realdata")),
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary(results: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Title, what was evaluated, the summary table, and the held-out site's when there is one."""
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
    return lines


def _findings(
    models: Mapping[str, Mapping[str, Any]], curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out_dir: Path
) -> list[str]:
    plot_roc_curves(curves, out_dir / "roc_findings.png", "zero-shot findings")
    return ["", "## Zero-shot findings (AUC)", "", *_keyed_table(models, "zero_shot_auc"), "",
            "![ROC curves](roc_findings.png)", ""]


def _diagnoses(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return ["## Diagnoses", "", "Zero-shot AUC (prompt ensembles):", "", *_keyed_table(models, "diagnosis_auc"),
            "",
            "Precision@10 of the plain-language query (over the top min(10, positives) studies when the split"
            " holds fewer than 10 with the diagnosis):", "",
            *_keyed_table(models, "diagnosis_precision_at_10"), "", "Average precision of the query:", "",
            *_keyed_table(models, "diagnosis_ap"), "", "Linear probe AUC (frozen embeddings):", "",
            *_keyed_table(models, "probe_auc"), ""]


def _few_shot(few: Mapping[str, Mapping[str, float | None]], out_dir: Path) -> list[str]:
    if not few:
        return []
    shots = sorted(few, key=int)
    names = sorted({f for per in few.values() for f in per})
    plot_few_shot({int(s): {f: np.nan if v is None else v for f, v in few[s].items()} for s in shots},
                  out_dir / "few_shot.png")
    return ["## Few-shot prototype classifier (AUC, model)", "",
            *_table(["finding", *shots], [[f, *(few[s].get(f) for s in shots)] for f in names]), "",
            "![few-shot](few_shot.png)", ""]


def _retrieval(models: Mapping[str, Mapping[str, Any]], out_dir: Path) -> list[str]:
    retrieval = {name: t.get("retrieval", {}) for name, t in models.items()}
    if not any(retrieval.values()):
        return []
    keys = sorted({k for r in retrieval.values() for k in r})
    plot_recall_bars(
        {n: {k: np.nan if v is None else v for k, v in r.items()} for n, r in retrieval.items()},
        out_dir / "recall_at_k.png",
    )
    return ["## Retrieval (impression as the text)", "",
            *_table(["metric", *retrieval], [[k, *(r.get(k) for r in retrieval.values())] for k in keys]),
            "", "![recall@K](recall_at_k.png)", ""]


def real_stacks_section(real: Mapping[str, Any] | None) -> list[str]:
    """Where the real stacks land: a row per stack (scores, verdict, nearest phantom studies) and a summary line."""
    if real is None:
        return []
    lines = [f"## Real stacks ({real['source']})", "", *(f"Note: {note}\n" for note in real.get("notes", []))]
    if not real.get("stacks"):
        return [*lines, *([] if real.get("notes") else ["No real stack was placed.", ""])]
    n_near = len(real["stacks"][0]["nearest"])
    lines += [
        "Zero-shot score of the evaluated model (cosine to the positive prompts minus the negative ones) with its"
        " percentile among the phantom split's studies; ✓ where it reaches the score that best separates the"
        " phantom split by ground truth (Youden). \"dilated, poorly contracting\" = "
        + " and ".join(f.replace("_", " ") for f in DILATED_POORLY_CONTRACTING)
        + f" both ✓. Nearest: ground-truth diagnoses of the {n_near} phantom studies of the split nearest by"
        " embedding cosine.",
        "",
    ]
    header = ["stack", "top diagnosis", *(title for _, _, title in SHOWN), "dilated, poorly contracting",
              f"{n_near} nearest phantom"]
    rows = []
    for stack in real["stacks"]:
        cells = []
        for group, name, _ in SHOWN:
            kind = KIND[group]
            mark = {True: " ✓", False: "", None: ""}[stack[f"{kind}_present"].get(name)]
            percent = stack[f"{kind}_percentiles"].get(name)
            cells.append(f"{stack[f'{kind}_scores'][name]:+.3f} (p{percent:.0f}){mark}")
        nearest = ", ".join("+".join(n["diagnoses"]) or "other" for n in stack["nearest"])
        rows.append([stack["name"], stack["top_diagnosis"], *cells,
                     "yes" if stack["dilated_poorly_contracting"] else "no", nearest])
    thresholds = real.get("thresholds", {})
    cuts = ", ".join(
        f"{name.replace('_', ' ')} {_cell(thresholds.get(group, {}).get(name))}" for group, name, _ in SHOWN
    )
    return [*lines, *_table(header, rows), "", f"Phantom thresholds: {cuts}.", "", f"**{real['summary']}.**", ""]


def _mean(values: Mapping[str, float | None]) -> float | None:
    finite = [v for v in values.values() if v is not None]
    return float(np.mean(finite)) if finite else None


def _keyed_table(models: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    names = list(next(iter(models.values())).get(key, {}))
    return _table(["name", *models], [[n, *(t.get(key, {}).get(n) for t in models.values())] for n in names])


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows),
    ]
