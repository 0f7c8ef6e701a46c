"""Which series a study holds and how each is named and acquired, following the site preset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.sites import EXTRA_SERIES_PROB, VAGUE_NAME_PROB, VIEW_MISSING_PROB

CINE_VIEWS = ("2ch", "4ch", "3ch", "sax")


@dataclass
class SeriesPlan:
    view: str  # ground-truth view label: sax, 2ch, 3ch, 4ch, lge_sax, lge_lax, other
    kind: str  # cine, lge, t1map, localizer
    description: str
    lax_views: tuple[str, ...] = ()  # for lge_lax: which long-axis planes
    sax_slices: tuple[int, ...] | None = None  # for a SAX stack split into one series per slice


def _vary(rng: np.random.Generator, name: str) -> str:
    """Small within-site variations: suffixes, numbering, case."""
    r = rng.random()
    if r < 0.08:
        return name + "_" + str(int(rng.integers(2, 4)))
    if r < 0.14:
        return name + " (repeat)"
    if r < 0.18:
        return name.upper()
    if r < 0.22:
        return name + "_BH"
    return name


def _name(rng: np.random.Generator, site: dict, key: str, number: int) -> str:
    if key not in ("localizer", "t1map") and rng.random() < VAGUE_NAME_PROB:
        vague = [f"series {number}", f"Series{number}"]
        if key in CINE_VIEWS:
            vague += list(site["vague_names"])
        return str(vague[int(rng.integers(len(vague)))])
    names = site["names"][key]
    return _vary(rng, str(names[int(rng.integers(len(names)))]))


def plan_series(rng: np.random.Generator, site: dict, n_sax: int) -> list[SeriesPlan]:
    """The ordered series of a study (acquisition order: scouts, cines, T1, LGE)."""
    present = {v: rng.random() >= p for v, p in VIEW_MISSING_PROB.items()}
    if not any(present[v] for v in ("sax", "4ch", "2ch", "3ch")):
        present["sax"] = True
    extras = rng.random() < EXTRA_SERIES_PROB
    with_localizer = extras and rng.random() < 0.7
    with_t1 = extras and (not with_localizer or rng.random() < 0.4)
    plans: list[SeriesPlan] = []
    number = 1

    def add(view: str, kind: str, key: str, **kw) -> None:
        nonlocal number
        plans.append(SeriesPlan(view, kind, _name(rng, site, key, number), **kw))
        number += 1

    if with_localizer:
        add("other", "localizer", "localizer")
    for view in ("2ch", "4ch", "3ch"):
        if present[view]:
            add(view, "cine", view)
    if present["sax"]:
        if rng.random() < site["sax_split_prob"]:
            desc = _name(rng, site, "sax", number)
            for k in range(n_sax):
                plans.append(SeriesPlan("sax", "cine", desc, sax_slices=(k,)))
        else:
            add("sax", "cine", "sax")
    if with_t1:
        add("other", "t1map", "t1map")
    if present["lge_sax"]:
        add("lge_sax", "lge", "lge_sax")
    if present["lge_lax"]:
        n = int(rng.integers(1, 4))
        lax = tuple(str(v) for v in rng.permutation(["4ch", "2ch", "3ch"])[:n])
        if site["lge_lax_mode"] == "combined":
            add("lge_lax", "lge", "lge_lax", lax_views=lax)
        else:
            for v in lax:
                plans.append(SeriesPlan("lge_lax", "lge", _lge_lax_name(rng, site, v), lax_views=(v,)))
    return plans


def _lge_lax_name(rng: np.random.Generator, site: dict, view: str) -> str:
    names = [n for n in site["names"]["lge_lax"] if view.lower() in n.lower()]
    if not names or rng.random() < 0.3:
        names = site["names"]["lge_lax"]
    if rng.random() < VAGUE_NAME_PROB:
        return f"series {int(rng.integers(9, 30))}"
    return _vary(rng, str(names[int(rng.integers(len(names)))]))
