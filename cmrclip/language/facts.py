"""Facts from a report: findings (present / absent / uncertain), diagnoses, LGE pattern and territory, numbers.

``extract_facts(text)`` for one report, ``extract_many(texts)`` for many (one ``nlp.pipe`` pass). Only what the
report states becomes a fact: qualitative words ("severely impaired") set findings, never numbers; a number sets a
finding only where the report says nothing else of it (LVEF < 50 % → LV systolic dysfunction, RVEF < 45 %, maximal
wall thickness ≥ 13 mm). Statements in the indication, technique and comparison sections are no findings; diagnoses
named there are kept apart as ``history``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from spacy.tokens import Doc, Span, Token

from cmrclip.language.lexicon import (
    COMPARATORS,
    FINDINGS,
    MAIN_WALL,
    NOT_THIS_STUDY,
    UNITS,
    VESSEL_WALLS,
)
from cmrclip.language.pipeline import (
    NOT_FINDINGS,
    cue_after,
    lowers,
    pipeline,
    section_names,
    sentence_ends,
    tags_of,
)

NUMBERS = ("lvef", "rvef", "lvedv", "lvedvi", "rvedv", "rvedvi", "lv_mass", "lv_mass_index", "max_wall_thickness_mm")
# A number sets a finding the report does not otherwise state: (number, threshold, finding present when above?)
NUMBER_FINDINGS = (
    ("lvef", 50.0, "lv_systolic_dysfunction", False),
    ("rvef", 45.0, "rv_systolic_dysfunction", False),
    ("max_wall_thickness_mm", 13.0, "lv_hypertrophy", True),
)
_RANK = {"present": 3, "uncertain": 2, "absent": 1}


@dataclass
class Quantity:
    """A number in the text: what it measures, its value (range midpoint), and how it was said."""

    name: str  # one of NUMBERS, or effusion_mm / lvesv / rvesv
    value: float
    low: float
    high: float
    op: str  # "=" a value, "range" lo-hi, "<" ">" "~" comparisons (queries)
    start: int  # token index of the number
    end: int  # token index after the number and its unit

    @property
    def is_range(self) -> bool:
        return self.op == "range"


@dataclass
class ReportFacts:
    """What one report says. ``findings`` holds only findings the report speaks of (absent = not mentioned)."""

    lvef: float | None = None
    rvef: float | None = None
    lvedv: float | None = None
    lvedvi: float | None = None
    rvedv: float | None = None
    rvedvi: float | None = None
    lv_mass: float | None = None
    lv_mass_index: float | None = None
    max_wall_thickness_mm: float | None = None
    findings: dict[str, str] = field(default_factory=dict)
    diagnoses: list[str] = field(default_factory=list)
    uncertain_diagnoses: list[str] = field(default_factory=list)
    excluded_diagnoses: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    lge_pattern: list[str] = field(default_factory=list)
    territories: list[str] = field(default_factory=list)
    from_numbers: list[str] = field(default_factory=list)  # findings set by a number, not by words

    def finding(self, name: str) -> str:
        """``present`` | ``absent`` | ``uncertain`` | ``not mentioned``."""
        return self.findings.get(name, "not mentioned")

    def walls(self) -> set[str]:
        """Walls named, plus the walls a named coronary territory supplies."""
        out = {t for t in self.territories if t not in VESSEL_WALLS}
        for t in self.territories:
            out.update(VESSEL_WALLS.get(t, ()))
        return out

    def to_json(self) -> dict:
        d = asdict(self)
        d["findings"] = {k: self.findings[k] for k in FINDINGS if k in self.findings}
        return d

    @classmethod
    def from_json(cls, d: dict) -> ReportFacts:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def extract_facts(text: str) -> ReportFacts:
    return facts_from_doc(pipeline()(text or ""))


def extract_many(texts: Iterable[str], batch_size: int = 64) -> list[ReportFacts]:
    return [facts_from_doc(doc) for doc in pipeline().pipe((t or "" for t in texts), batch_size=batch_size)]


def status_of(ent: Span) -> str:
    """``present`` / ``absent`` / ``uncertain`` for what an entity states, from NegEx before it and cues after."""
    cache = ent.doc.user_data.setdefault("status", {})
    key = (ent.start, ent.end)
    if key not in cache:
        after = cue_after(ent)
        if ent._.uncertain or after == "uncertain":
            cache[key] = "uncertain"
        elif ent._.negex or after == "negated":
            cache[key] = "absent"
        else:
            cache[key] = "present"
    return cache[key]


def findings_of(ents: Iterable[Span]) -> dict[str, str]:
    """Finding -> status over the entities given; present beats uncertain beats absent."""
    out: dict[str, str] = {}
    for ent in ents:
        if not ent.label_.startswith("F:"):
            continue
        st = status_of(ent)
        for part in ent.label_[2:].split("+"):
            name, _, pol = part.partition("=")
            if pol == "norm":
                s = {"present": "absent", "absent": "present", "uncertain": "uncertain"}[st]
                if st == "absent":  # "not normal" is too vague to call a finding present
                    continue
                if st == "uncertain":
                    continue
            else:
                s = st
            if _RANK[s] > _RANK.get(out.get(name, ""), 0):
                out[name] = s
    return out


def _counts(tok: Token) -> bool:
    """Whether a token's section states findings of this study."""
    sec = section_names(tok.doc)[tok.i]
    return sec not in NOT_FINDINGS and sec != "heading"


def facts_from_doc(doc: Doc) -> ReportFacts:
    facts = ReportFacts()
    body = [e for e in doc.ents if _counts(e[0])]
    facts.findings = findings_of(body)
    dx_status: dict[str, str] = {}
    for ent in doc.ents:
        if not ent.label_.startswith("DX:"):
            continue
        name = ent.label_[3:]
        if not _counts(ent[0]):
            if status_of(ent) == "present" and name not in facts.history:
                facts.history.append(name)
            continue
        st = status_of(ent)
        if ent._.historical and st == "present" and name not in facts.history:
            facts.history.append(name)
        if _RANK[st] > _RANK.get(dx_status.get(name, ""), 0):
            dx_status[name] = st
    facts.diagnoses = [n for n, s in dx_status.items() if s == "present"]
    facts.uncertain_diagnoses = [n for n, s in dx_status.items() if s == "uncertain"]
    facts.excluded_diagnoses = [n for n, s in dx_status.items() if s == "absent"]
    _lge_details(doc, facts)
    for q in sorted(quantities(doc, report=True), key=lambda q: (q.is_range, q.start)):
        if q.name in NUMBERS and getattr(facts, q.name) is None:
            setattr(facts, q.name, q.value)
    # only where nothing at all is said of the finding
    for name, threshold, finding, above in NUMBER_FINDINGS:
        value = getattr(facts, name)
        if value is not None and finding not in facts.findings:
            facts.findings[finding] = "present" if (value >= threshold if above else value < threshold) else "absent"
            facts.from_numbers.append(finding)
    # an infarct described as transmural / subendocardial is scar seen on LGE
    if "lge_present" not in facts.findings and "prior_infarction" in facts.diagnoses and facts.lge_pattern:
        facts.findings["lge_present"] = "present"
    return facts


def _sent_start(doc: Doc, i: int) -> int:
    ends = sentence_ends(doc)
    j = i
    while j > 0 and ends[j - 1] == ends[i]:
        j -= 1
    return j


def _lge_details(doc: Doc, facts: ReportFacts) -> None:
    """LGE patterns and walls named in sentences that affirm LGE (patterns) or LGE / RWMA / infarct (walls)."""
    patterns: list[str] = []
    walls: list[str] = []
    wanted: dict[int, tuple[bool, bool]] = {}  # sentence start -> (LGE or infarct, RWMA)
    for e in doc.ents:
        if not _counts(e[0]) or status_of(e) == "absent":
            continue
        lge = "lge_present=abn" in e.label_ or e.label_ == "DX:prior_infarction"
        rwma = "regional_wall_motion_abnormality=abn" in e.label_
        if lge or rwma:
            start = _sent_start(doc, e.start)
            was = wanted.get(start, (False, False))
            wanted[start] = (was[0] or lge, was[1] or rwma)
    if not wanted:
        return
    for sent in doc.sents:
        if sent.start not in wanted:
            continue
        lge, _ = wanted[sent.start]
        for c in doc.spans["concepts"]:
            if c.start >= sent.end:
                break
            if c.start < sent.start:
                continue
            t = tags_of(c.label_)
            if lge and "PATTERN" in t:
                patterns.extend(t["PATTERN"])
            if "WALL" in t:
                walls.extend(t["WALL"][0].split("+"))
    facts.lge_pattern = list(dict.fromkeys(patterns))
    facts.territories = list(dict.fromkeys(walls))


# ---------------------------------------------------------------------------------------------------- numbers


_NUM = re.compile(r"^\d+(?:[.,]\d+)?$")


class _Text:
    """Per-doc token arrays for the number reader (lower-case texts, number flags, sentence bounds, concepts)."""

    def __init__(self, doc: Doc):
        self.doc = doc
        self.low = lowers(doc)
        self.num = [bool(_NUM.match(w)) for w in self.low]
        ends = sentence_ends(doc)
        self.sent_end = ends
        self.sent_start = [0] * len(doc)
        start = 0
        for i in range(len(doc)):
            if i > 0 and ends[i] != ends[i - 1]:
                start = i
            self.sent_start[i] = start
        self.concepts: dict[int, Span] = {}
        for c in doc.spans["concepts"]:
            for j in range(c.start, c.end):
                self.concepts[j] = c

    def value(self, i: int) -> float:
        return float(self.low[i].replace(",", "."))


def _unit(tx: _Text, i: int) -> tuple[str | None, int]:
    """The unit starting at token ``i`` ("%", "per cent", "mL/m2", "ml per m²", "g", "mm"...) and the index after it."""
    for k in (5, 4, 3, 2, 1):
        if i + k <= len(tx.low):
            joined = "".join(tx.low[i : i + k])
            if joined in UNITS:
                return UNITS[joined], i + k
    return None, i


def _comparator(tx: _Text, start: int, stop: int) -> str:
    """The comparison word(s) between a keyword (ending at ``stop``) and the number at ``start``."""
    words = tx.low[stop:start]
    for k in (3, 2, 1):
        for j in range(len(words) - k + 1):
            phrase = " ".join(words[j : j + k])
            if phrase in COMPARATORS:
                return COMPARATORS[phrase]
    return "="


_MEASURE_RANK = ("edvi", "massi", "esv", "edv", "mass", "ef", "wall", "effusion")


def measures_of(c: Span) -> list[str]:
    """What a number next to this concept may measure (hypertrophy words and walls measure wall thickness)."""
    t = tags_of(c.label_)
    out = list(t.get("MEASURE", ()))
    if "wall" not in out and ("hypertrophy" in t.get("STATE", ()) or "thick" in t.get("ASPECT", ())
                              or "SEPTUM" in t.get("ANAT", ())):
        out.append("wall")
    if "effusion" not in out and "effusion" in t.get("STATE", ()):
        out.append("effusion")
    return out


def _keyword(tx: _Text, i: int, back: int = 9) -> Span | None:
    """The nearest measure keyword before token ``i`` in its sentence."""
    for j in range(i - 1, max(tx.sent_start[i], i - back) - 1, -1):
        c = tx.concepts.get(j)
        if c is not None and measures_of(c):
            return c
    return None


def _keyword_after(tx: _Text, i: int) -> Span | None:
    if i >= len(tx.low):
        return None
    for j in range(i, min(i + 3, tx.sent_end[i])):
        c = tx.concepts.get(j)
        if c is not None and measures_of(c):
            return c
    return None


def _chamber(tx: _Text, kw: Span) -> str:
    """LV or RV for a keyword: its own prefix (LVEF), else the nearest ventricle before it in the sentence."""
    own = tags_of(kw.label_).get("ANAT")
    if own and own[0] in ("LV", "RV"):
        return own[0]
    low = tx.low[kw.start]
    if low.startswith("rv"):
        return "RV"
    if low.startswith("lv"):
        return "LV"
    for j in range(kw.start - 1, tx.sent_start[kw.start] - 1, -1):
        c = tx.concepts.get(j)
        if c is not None:
            a = tags_of(c.label_).get("ANAT")
            if a and a[0] in ("LV", "RV"):
                return a[0]
    return "LV"


def quantities(doc: Doc, report: bool = False) -> list[Quantity]:
    """Numbers with what they measure. ``report``: leave out reference ranges, earlier values and comparisons."""
    tx = _Text(doc)
    low, num = tx.low, tx.num
    out: list[Quantity] = []
    n = len(low)
    i = 0
    while i < n:
        if not num[i] or (report and not _counts(doc[i])) or (i > 1 and low[i - 1] == "/" and num[i - 2]):
            i += 1
            continue
        lo = hi = tx.value(i)
        end = i + 1
        op = "="
        if end + 1 < n and low[end] in ("-", "–", "—", "to") and num[end + 1]:
            hi = tx.value(end + 1)
            end += 2
            op = "range"
        pair_second = None
        if end + 1 < n and low[end] == "/" and num[end + 1]:  # 180/90 mL
            pair_second = tx.value(end + 1)
            end += 2
        unit, end = _unit(tx, end)
        kw = _keyword(tx, i)
        if kw is None or (unit in ("mm", "cm") and not {"wall", "effusion"} & set(measures_of(kw))):
            kw = _keyword_after(tx, end) or kw
        if kw is None:
            i = end
            continue
        before = kw.end <= i
        if op == "=" and before:
            op = _comparator(tx, i, kw.end)
        between = set(low[kw.end : i]) if before else set()
        if report and (op in ("<", ">") or between & NOT_THIS_STUDY or _normal_ref(tx, kw.end, i)):
            i = end
            continue
        names = _names(tx, kw, measures_of(kw), unit)
        values = [(lo, hi)]
        if pair_second is not None and kw.start > 1 and low[kw.start - 1] == "/":
            values = [(pair_second, pair_second)]  # EDV/ESV 180/90: this keyword is the second one
            first = tx.concepts.get(kw.start - 2)
            if first is not None and measures_of(first):
                out.extend(_make(_names(tx, first, measures_of(first), unit), lo, hi, op, i, end))
        for a, b in values:
            out.extend(_make(names, a, b, op, i, end))
        i = end
    return out


def _normal_ref(tx: _Text, a: int, b: int) -> bool:
    """``(normal 57-74 %)``, ``normal > 55``: a reference range, not this study's value."""
    low = tx.low
    for j in range(a, b):
        if low[j] == "normal" and (
            (j > 0 and low[j - 1] == "(")
            or (j + 1 < len(low) and (low[j + 1] in ("<", ">", ":", "≥", "≤", "range")
                                      or (tx.num[j + 1] and j + 1 == b)))
        ):
            return True
    return False


def _names(tx: _Text, kw: Span, measures: list[str], unit: str | None) -> list[str]:
    chamber = _chamber(tx, kw).lower()
    low = kw.text.lower()
    indexed = "i" in low[-1:] and low.endswith("vi") or "index" in low or "/bsa" in low or low.endswith("/m2")
    for m in sorted(measures, key=_MEASURE_RANK.index):
        if m == "ef" and unit in ("%", None):
            return [f"{chamber}ef"]
        if m in ("edv", "edvi"):
            if unit == "ml/m2" or (unit is None and (m == "edvi" or indexed)) or (unit == "ml" and m == "edvi"):
                return [f"{chamber}edvi"]
            if unit == "ml" or unit is None:
                return [f"{chamber}edv"]
        if m == "esv" and unit in ("ml", "ml/m2", None):
            return [f"{chamber}esv"]
        if m in ("mass", "massi") and chamber == "lv":
            if unit == "g/m2" or (unit is None and m == "massi"):
                return ["lv_mass_index"]
            if unit == "g" or unit is None:
                return ["lv_mass"]
        if m == "wall" and unit in ("mm", "cm"):
            return ["max_wall_thickness_mm"]
        if m == "effusion" and unit in ("mm", "cm"):
            return ["effusion_mm"]
    return []


def _make(names: list[str], lo: float, hi: float, op: str, start: int, end: int) -> list[Quantity]:
    out = []
    for name in names:
        a, b = lo, hi
        if name in ("max_wall_thickness_mm", "effusion_mm") and max(a, b) < 4:  # cm
            a, b = a * 10, b * 10
        if name.endswith("ef") and max(a, b) <= 1.0:  # a fraction
            a, b = a * 100, b * 100
        if name.endswith("ef") and not (1 <= a <= 95 and 1 <= b <= 95):
            continue
        out.append(Quantity(name, (a + b) / 2, min(a, b), max(a, b), op, start, end))
    return out


def affirmed_findings(facts: ReportFacts) -> list[str]:
    return [f for f in FINDINGS if facts.findings.get(f) == "present"]


def territory_matches(wanted: str, facts: ReportFacts) -> bool:
    """A wall or coronary territory asked for, against the walls and territories a report names."""
    if wanted in facts.territories:
        return True
    if wanted in MAIN_WALL and any(t in MAIN_WALL for t in facts.territories):
        return False  # the report names another vessel: that decides, not a wall two territories share
    walls = facts.walls()
    if wanted in MAIN_WALL:
        return MAIN_WALL[wanted] in walls
    return wanted in walls
