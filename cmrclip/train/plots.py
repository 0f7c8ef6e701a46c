"""Matplotlib figures (Agg backend, written to files) for training and evaluation reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def plot_loss_curve(history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Training loss per step (and validation loss per epoch where recorded), learning rate on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history if "loss" in h]
    ax.plot(steps, [h["loss"] for h in history if "loss" in h], lw=0.8, label="train loss")
    val = [h for h in history if "val_loss" in h]
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss")
    ax.legend(loc="upper right")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [h["lr"] for h in history if "loss" in h], color="grey", lw=0.6, alpha=0.6)
    lr_ax.set_ylabel("learning rate", color="grey")
    return _save(fig, path)


def plot_roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """One ROC curve per name from ``(labels, scores)``."""
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, (labels, scores) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, lw=1.2, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def plot_few_shot(few_shot: Mapping[int, Mapping[str, float]], path: Path) -> Path:
    """Mean AUC over findings (and each finding, thin) against the number of shots."""
    fig, ax = plt.subplots(figsize=(6, 4))
    shots = sorted(few_shot)
    names = sorted({name for per_shot in few_shot.values() for name in per_shot})
    for name in names:
        ax.plot(shots, [few_shot[s].get(name, np.nan) for s in shots], lw=0.6, alpha=0.5)
    mean = [np.nanmean(list(few_shot[s].values())) for s in shots]
    ax.plot(shots, mean, "ko-", lw=2, label="mean over findings")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="shots per class", ylabel="AUC", title="few-shot prototype classifier")
    ax.legend()
    return _save(fig, path)


def plot_recall_bars(retrieval: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Grouped bars of recall@K (text-to-video and video-to-text) per model."""
    keys = [f"{d}_r{k}" for d in ("t2v", "v2t") for k in (1, 5, 10, 50)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(retrieval), 1)
    for i, (model, values) in enumerate(retrieval.items()):
        ax.bar(np.arange(len(keys)) + i * width, [values.get(k, np.nan) for k in keys], width, label=model)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys)
    ax.set(ylabel="recall", ylim=(0, 1), title="retrieval recall@K")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
