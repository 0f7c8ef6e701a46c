"""Cohort figures (matplotlib, object API only: figures are made per request, never through pyplot's globals)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

SEX_COLOURS = {"F": "#c2185b", "M": "#1565c0", "?": "#9e9e9e"}


def score_histogram(scores: Sequence[float], threshold: float) -> Figure:
    """Distribution of scores over every allowed study, the selected part (>= threshold) in colour."""
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax = fig.subplots()
    values = np.asarray(scores, dtype=float)
    bins = np.histogram_bin_edges(values, bins=30) if values.size else np.linspace(0, 1, 31)
    ax.hist(values[values < threshold], bins=bins, color="#b0bec5", label="below threshold")
    ax.hist(values[values >= threshold], bins=bins, color="#00897b", label="in cohort")
    ax.axvline(threshold, color="#263238", linestyle="--", linewidth=1)
    ax.set_xlabel("score")
    ax.set_ylabel("studies")
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def age_sex_figure(ages: Sequence[int | None], sexes: Sequence[str | None]) -> Figure:
    """Age histogram stacked by sex (left) and the count per sex (right) of the selected studies."""
    fig = Figure(figsize=(5, 2.8), layout="constrained")
    ax_age, ax_sex = fig.subplots(1, 2, width_ratios=[3, 1])
    groups = {key: [a for a, s in zip(ages, sexes, strict=True) if (s or "?") == key and a is not None]
              for key in SEX_COLOURS}
    groups = {k: v for k, v in groups.items() if v}
    bins = np.arange(0, 101, 10)
    if groups:
        ax_age.hist(list(groups.values()), bins=bins, stacked=True, label=list(groups),
                    color=[SEX_COLOURS[k] for k in groups])
        ax_age.legend(frameon=False, fontsize=8)
    ax_age.set_xlabel("age (years)")
    ax_age.set_ylabel("studies")
    counts = {k: sum(1 for s in sexes if (s or "?") == k) for k in SEX_COLOURS}
    counts = {k: n for k, n in counts.items() if n}
    ax_sex.bar(list(counts), list(counts.values()), color=[SEX_COLOURS[k] for k in counts])
    ax_sex.set_xlabel("sex")
    for ax in (ax_age, ax_sex):
        ax.spines[["top", "right"]].set_visible(False)
    return fig
