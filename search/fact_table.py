"""Report facts held as arrays, so a parsed query's constraints are checked against every report in numpy.

One row per study with a report and facts: findings as codes (0 not mentioned, 1 present, 2 absent,
3 uncertain), numbers (NaN unknown), and bit masks of diagnoses, LGE patterns and walls / territories.
``checks(parsed)`` gives, per constraint of a ``cmrclip.language.ParsedQuery``, one tri-state array (1 holds,
-1 contradicted, 0 the report does not say), by the same rules as ``ParsedQuery.checks`` (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from catalog.facts import all_study_facts, facts_signature
from cmrclip.language import FINDINGS, LGE_PATTERNS
from cmrclip.language.facts import NUMBERS
from cmrclip.language.lexicon import DIAGNOSES, MAIN_WALL, VESSEL_WALLS, VESSELS, WALLS
from cmrclip.language.query import IMPLIED, ParsedQuery

CODE = {"present": 1, "absent": 2, "uncertain": 3}
DX = tuple(DIAGNOSES)
PLACES = (*WALLS, *VESSELS)


def _bits(names: Any, universe: tuple[str, ...]) -> int:
    return sum(1 << universe.index(n) for n in set(names or ()) if n in universe)


@dataclass(frozen=True)
class Check:
    """One constraint: its label, what kind of evidence the images can give for it, and its outcome per row."""

    label: str
    kind: str  # finding | range | diagnosis | lge | territory
    image: tuple[str, bool] | None  # (finding, wanted present?) the image model can score, else None
    outcome: np.ndarray  # int8 per fact-table row: 1 holds, -1 contradicted, 0 unknown


@dataclass(frozen=True)
class FactTable:
    signature: tuple[Any, ...]
    ids: np.ndarray  # int64 study ids, sorted
    findings: np.ndarray  # int8 [n, len(FINDINGS)]
    numbers: np.ndarray  # float64 [n, len(NUMBERS)]
    dx_named: np.ndarray  # int64 bits over DX: diagnosed
    dx_uncertain: np.ndarray  # int64 bits over DX: named as possible
    dx_excluded: np.ndarray  # int64 bits over DX
    lge: np.ndarray  # int64 bits over LGE_PATTERNS
    places: np.ndarray  # int64 bits over PLACES: territories named
    walls: np.ndarray  # int64 bits over PLACES: walls named or supplied by a named vessel

    @classmethod
    def empty(cls) -> FactTable:
        z = np.zeros(0, dtype=np.int64)
        return cls((), z, np.zeros((0, len(FINDINGS)), np.int8), np.zeros((0, len(NUMBERS))), z, z, z, z, z, z)

    @classmethod
    def load(cls, session: Session) -> FactTable:
        rows = all_study_facts(session)
        n = len(rows)
        findings = np.zeros((n, len(FINDINGS)), dtype=np.int8)
        numbers = np.full((n, len(NUMBERS)), np.nan)
        masks = np.zeros((6, n), dtype=np.int64)
        for i, (_, f) in enumerate(rows):
            for j, name in enumerate(FINDINGS):
                findings[i, j] = CODE.get((f.get("findings") or {}).get(name, ""), 0)
            for j, name in enumerate(NUMBERS):
                if f.get(name) is not None:
                    numbers[i, j] = float(f[name])
            territories = list(f.get("territories") or [])
            walls = {t for t in territories if t not in VESSEL_WALLS}
            for t in territories:
                walls.update(VESSEL_WALLS.get(t, ()))
            masks[:, i] = (
                _bits(f.get("diagnoses"), DX),
                _bits(f.get("uncertain_diagnoses"), DX),
                _bits(f.get("excluded_diagnoses"), DX),
                _bits(f.get("lge_pattern"), LGE_PATTERNS),
                _bits(territories, PLACES),
                _bits(walls, PLACES),
            )
        return cls(facts_signature(session), np.array([r[0] for r in rows], dtype=np.int64), findings, numbers,
                   *masks)

    def without(self, ids: np.ndarray) -> FactTable:
        """This table without the rows of these studies (evaluation: reports withheld)."""
        keep = ~np.isin(self.ids, ids)
        return FactTable(self.signature, self.ids[keep], self.findings[keep], self.numbers[keep],
                         *(getattr(self, m)[keep] for m in ("dx_named", "dx_uncertain", "dx_excluded", "lge",
                                                            "places", "walls")))

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each study id in this table, -1 where the study has no facts."""
        if len(self.ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[pos] == ids, pos, -1)

    def finding(self, name: str) -> np.ndarray:
        return self.findings[:, FINDINGS.index(name)]

    def number(self, name: str) -> np.ndarray:
        return self.numbers[:, NUMBERS.index(name)]

    # --- constraints of a parsed query -------------------------------------------------------------------------

    def checks(self, q: ParsedQuery) -> list[Check]:
        out: list[Check] = []
        for f in q.required:
            st = self.finding(f)
            out.append(Check(f, "finding", (f, True), _tri(st == 1, st == 2)))
        for f in q.forbidden:
            st = self.finding(f)
            out.append(Check(f"no {f}", "finding", (f, False), _tri(st == 2, st == 1)))
        for name, (lo, hi) in q.ranges.items():
            out.append(self._range(name, lo, hi))
        for d in q.diagnoses:
            bit = _bit(d, DX)
            named = ((self.dx_named | self.dx_uncertain) & bit) != 0
            out.append(Check(d, "diagnosis", None, _tri(named, (self.dx_excluded & bit) != 0)))
        for d in q.excluded_diagnoses:
            bit = _bit(d, DX)
            named = (self.dx_named & bit) != 0
            out.append(Check(f"no {d}", "diagnosis", None, _tri(~named & ((self.dx_excluded & bit) != 0), named)))
        lge_absent = self.finding("lge_present") == 2
        for p in q.lge_pattern:
            has = (self.lge & _bit(p, LGE_PATTERNS)) != 0
            ok = ~lge_absent & has
            out.append(Check(f"LGE {p}", "lge", ("lge_present", True), _tri(ok, lge_absent | (~has & (self.lge != 0)))))
        vessel_named = (self.places & sum(_bit(v, PLACES) for v in VESSELS)) != 0
        for t in q.territories:
            ok = (self.places & _bit(t, PLACES)) != 0
            by_wall = (self.walls & _bit(MAIN_WALL.get(t, t), PLACES)) != 0
            ok |= (by_wall & ~vessel_named) if t in MAIN_WALL else by_wall  # a named vessel decides
            bad = ~ok & ((self.places != 0) | lge_absent)
            out.append(Check(f"territory {t}", "territory", ("lge_present", True), _tri(ok, bad)))
        return out

    def _range(self, name: str, lo: float | None, hi: float | None) -> Check:
        label = f"{name} {'' if lo is None else f'{lo:g}'}-{'' if hi is None else f'{hi:g}'}"
        known = ~np.isnan(self.number(name)) if name in NUMBERS else np.zeros(len(self), bool)
        value = self.number(name) if name in NUMBERS else np.full(len(self), np.nan)
        with np.errstate(invalid="ignore"):
            inside = known & (True if lo is None else value >= lo) & (True if hi is None else value <= hi)
        outcome = np.where(known, np.where(inside, 1, -1), 0).astype(np.int8)
        if name not in IMPLIED:
            return Check(label, "range", None, outcome)
        finding, threshold, above = IMPLIED[name]
        low, high = (-1e9 if lo is None else lo), (1e9 if hi is None else hi)
        abnormal_side = (low >= threshold) if above else (high <= threshold)
        normal_side = (high <= threshold) if above else (low >= threshold)
        whole_abnormal = abnormal_side and ((high >= 1e8) if above else (low <= 0 and high >= threshold))
        whole_normal = normal_side and ((low <= 0 and high >= threshold) if above else (high >= 1e8))
        st = self.finding(finding)
        by_finding = np.zeros(len(self), dtype=np.int8)
        if normal_side:
            by_finding[st == 1] = -1
        elif whole_abnormal:
            by_finding[st == 1] = 1
        if abnormal_side:
            by_finding[st == 2] = -1
        elif whole_normal:
            by_finding[st == 2] = 1
        outcome = np.where(known, outcome, by_finding).astype(np.int8)
        image = (finding, True) if abnormal_side else (finding, False) if normal_side else None
        return Check(label, "range", image, outcome)

    # --- filters ------------------------------------------------------------------------------------------------

    def matching(self, conditions: tuple[tuple[str, str, Any], ...]) -> np.ndarray:
        """Sorted study ids whose facts meet every ``(field, op, value)`` condition (see ``search.filters``)."""
        keep = np.ones(len(self), dtype=bool)
        with np.errstate(invalid="ignore"):  # NaN compares False: an unknown number never matches
            for name, op, value in conditions:
                if name in NUMBERS:
                    v = self.number(name)
                    keep &= {"<": v < value, "<=": v <= value, ">": v > value, ">=": v >= value,
                             "=": v == value}[op]
                elif name == "lge":
                    keep &= (self.lge & _bit(value, LGE_PATTERNS)) != 0
                elif name == "diagnosis":
                    keep &= ((self.dx_named | self.dx_uncertain) & _bit(value, DX)) != 0
                elif name == "territory":
                    keep &= ((self.places & _bit(value, PLACES)) != 0) | (
                        (self.walls & _bit(MAIN_WALL.get(value, value), PLACES)) != 0)
                elif name in FINDINGS:
                    keep &= self.finding(name) == CODE[value]
        return self.ids[keep]


def _bit(name: str, universe: tuple[str, ...]) -> int:
    return 1 << universe.index(name) if name in universe else 0


def _tri(ok: np.ndarray, bad: np.ndarray) -> np.ndarray:
    return np.where(ok, 1, np.where(bad, -1, 0)).astype(np.int8)
