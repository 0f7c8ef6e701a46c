"""Queries read by the same rules as reports: required and forbidden findings, numeric ranges, diagnoses, LGE
pattern and territory, and the free text left for the embedding.

"thick septum with preserved ejection fraction" -> required lv_hypertrophy, forbidden lv_systolic_dysfunction,
LVEF >= 50, no free text. "EF around 25 percent" -> LVEF 20-30. "19 mm wall" -> maximal wall thickness 16-22 mm.
``ParsedQuery.matches(facts)`` checks the constraints against a report's facts: True (all hold), False (one is
contradicted), None (the report does not say enough, or there are no constraints).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from spacy.tokens import Doc, Span

from cmrclip.language.facts import ReportFacts, quantities, status_of, territory_matches
from cmrclip.language.lexicon import FINDINGS
from cmrclip.language.pipeline import pipeline, tags_of

# "around" a number: half-widths per measure
AROUND = {"lvef": 5.0, "rvef": 5.0, "max_wall_thickness_mm": 3.0, "lvedvi": 10.0, "rvedvi": 10.0, "lvedv": 20.0,
          "rvedv": 20.0, "lv_mass": 20.0, "lv_mass_index": 10.0}
# A number's finding: (finding, threshold, abnormal when above?)
IMPLIED = {
    "lvef": ("lv_systolic_dysfunction", 50.0, False),
    "rvef": ("rv_systolic_dysfunction", 45.0, False),
    "max_wall_thickness_mm": ("lv_hypertrophy", 13.0, True),
    "lvedvi": ("lv_dilation", 100.0, True),
    "rvedvi": ("rv_dilation", 110.0, True),
}
# Qualitative ejection fraction in a query: (low, high) by degree
_EF_WORDS = {
    ("lv", "abn", None): (None, 50.0), ("lv", "abn", "mild"): (40.0, 50.0), ("lv", "abn", "moderate"): (30.0, 40.0),
    ("lv", "abn", "severe"): (None, 30.0), ("lv", "norm", None): (50.0, None),
    ("rv", "abn", None): (None, 45.0), ("rv", "norm", None): (45.0, None),
}
_STOP = {"with", "and", "or", "a", "an", "the", "of", "in", "on", "at", "for", "to", "by", "no", "not", "without",
         "any", "patient", "patients", "case", "cases", "study", "studies", "show", "shows", "showing", "who", "that",
         "which", "has", "have", "having", "is", "are", "was", "were", "be", "evidence", "find", "me", "all", "but",
         "plus", "also", "some", "there", "their", "its", "his", "her", "mri", "cmr", "scan", "scans", "exam",
         "exams", "examination", "like", "similar", "where", "report", "reports", "findings", "finding", "seen",
         "present", "presence", "positive", "negative", "absent", "absence", "known", "possible", "probable",
         "likely", "than", "least", "most", "up", "more", "less", "over", "under", "above", "below", "around",
         "about", "approximately", "approx", "roughly", "near", "circa", "greater", "lower", "higher", "percent",
         "per", "cent", "mm", "ml", "g", "m2", "%", "<", ">", "=", "~", "≤", "≥", "mls", "cm"}
_KEEP_KINDS = {"DX"}


@dataclass
class ParsedQuery:
    text: str
    required: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    diagnoses: list[str] = field(default_factory=list)
    excluded_diagnoses: list[str] = field(default_factory=list)
    lge_pattern: list[str] = field(default_factory=list)
    territories: list[str] = field(default_factory=list)
    free_text: str = ""

    @property
    def has_constraints(self) -> bool:
        return bool(self.required or self.forbidden or self.ranges or self.diagnoses or self.excluded_diagnoses
                    or self.lge_pattern or self.territories)

    def to_json(self) -> dict:
        d = asdict(self)
        d["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        return d

    def checks(self, facts: ReportFacts) -> list[tuple[str, bool | None]]:
        """Each constraint with its outcome on these facts: ("LVEF 20-30: 24", True), ("lge_present", None)..."""
        out: list[tuple[str, bool | None]] = []
        for f in self.required:
            st = facts.finding(f)
            out.append((f"{f}: {st}", True if st == "present" else False if st == "absent" else None))
        for f in self.forbidden:
            st = facts.finding(f)
            out.append((f"no {f}: {st}", True if st == "absent" else False if st == "present" else None))
        for name, (lo, hi) in self.ranges.items():
            out.append(_range_check(name, lo, hi, facts))
        for d in self.diagnoses:
            ok = True if d in facts.diagnoses or d in facts.uncertain_diagnoses else (
                False if d in facts.excluded_diagnoses else None)
            out.append((f"diagnosis {d}", ok))
        for d in self.excluded_diagnoses:
            ok = False if d in facts.diagnoses else (True if d in facts.excluded_diagnoses else None)
            out.append((f"no {d}", ok))
        lge = facts.finding("lge_present")
        for p in self.lge_pattern:
            if lge == "absent":
                ok = False
            elif p in facts.lge_pattern:
                ok = True
            else:
                ok = False if facts.lge_pattern else None
            out.append((f"LGE {p}", ok))
        for t in self.territories:
            ok = True if territory_matches(t, facts) else None
            if ok is None and (facts.territories or lge == "absent"):
                ok = False
            out.append((f"territory {t}", ok))
        return out

    def matches(self, facts: ReportFacts) -> bool | None:
        """True when every constraint holds, False when one is contradicted, else None (unknown or none)."""
        results = [ok for _, ok in self.checks(facts)]
        if not results:
            return None
        if any(ok is False for ok in results):
            return False
        return True if all(ok is True for ok in results) else None

    def reasons(self, facts: ReportFacts) -> list[str]:
        """What in the report met the constraints, e.g. ``["LVEF 24", "lge_present: present"]``."""
        return [what for what, ok in self.checks(facts) if ok]


def _range_check(name: str, lo: float | None, hi: float | None, facts: ReportFacts) -> tuple[str, bool | None]:
    label = f"{name} {'' if lo is None else f'{lo:g}'}-{'' if hi is None else f'{hi:g}'}"
    value = getattr(facts, name, None)
    if value is not None:
        ok = (lo is None or value >= lo) and (hi is None or value <= hi)
        return f"{name} {value:g}", ok
    if name not in IMPLIED:
        return label, None
    finding, threshold, above = IMPLIED[name]
    st = facts.finding(finding)
    low, high = (-1e9 if lo is None else lo), (1e9 if hi is None else hi)
    abnormal_side = (low >= threshold) if above else (high <= threshold)
    normal_side = (high <= threshold) if above else (low >= threshold)
    whole_abnormal = abnormal_side and ((high >= 1e8) if above else (low <= 0 and high >= threshold))
    whole_normal = normal_side and ((low <= 0 and high >= threshold) if above else (high >= 1e8))
    if st == "present":
        ok = False if normal_side else (True if whole_abnormal else None)
    elif st == "absent":
        ok = False if abnormal_side else (True if whole_normal else None)
    else:
        ok = None
    return f"{label} ({finding}: {st})", ok


def _degree(doc: Doc, ent: Span, concepts: dict[int, Span]) -> str | None:
    for j in range(max(ent.sent.start, ent.start - 3), ent.end):
        c = concepts.get(j)
        if c is not None and "ADV" in tags_of(c.label_):
            return tags_of(c.label_)["ADV"][0]
    return None


def parse_query(text: str) -> ParsedQuery:
    doc = pipeline()(text or "")
    return query_from_doc(doc)


def query_from_doc(doc: Doc) -> ParsedQuery:
    q = ParsedQuery(doc.text)
    concepts: dict[int, Span] = {}
    for c in doc.spans["concepts"]:
        for j in range(c.start, c.end):
            concepts[j] = c
    used: set[int] = set()
    required: dict[str, None] = {}
    forbidden: dict[str, None] = {}
    ef_ranges: dict[str, tuple[float | None, float | None]] = {}
    lge_or_rwma = False
    for ent in doc.ents:
        st = status_of(ent)
        if ent.label_.startswith("DX:"):
            name = ent.label_[3:]
            (q.excluded_diagnoses if st == "absent" else q.diagnoses).append(name)
            if name == "prior_infarction":
                lge_or_rwma = True
            continue
        used.update(range(ent.start, ent.end))
        for part in ent.label_[2:].split("+"):
            name, _, pol = part.partition("=")
            if st == "uncertain" or (st == "absent" and pol == "norm"):
                continue
            wanted = (pol == "abn") == (st == "present")
            (required if wanted else forbidden)[name] = None
            if name in ("lge_present", "regional_wall_motion_abnormality") and wanted:
                lge_or_rwma = True
            if name in ("lv_systolic_dysfunction", "rv_systolic_dysfunction"):
                side = "abn" if wanted else "norm"
                key = (name[:2], side, _degree(doc, ent, concepts) if side == "abn" else None)
                rng = _EF_WORDS.get(key) or _EF_WORDS.get((name[:2], side, None))
                if rng and _speaks_of_ef(doc, ent, concepts):
                    ef_ranges[f"{name[:2]}ef"] = rng
    for qn in quantities(doc, report=False):
        if qn.name not in AROUND:
            continue
        if qn.op in ("<", "max"):
            rng = (None, qn.value)
        elif qn.op == ">":
            rng = (qn.value, None)
        elif qn.op == "range":
            rng = (qn.low, qn.high)
        else:
            rng = (qn.value - AROUND[qn.name], qn.value + AROUND[qn.name])
        q.ranges[qn.name] = rng
        used.update(range(qn.start, qn.end))
        # a number stated makes the qualitative finding of the same measure redundant
        finding = IMPLIED.get(qn.name, (None,))[0]
        required.pop(finding, None)
        forbidden.pop(finding, None)
    for name, rng in ef_ranges.items():
        q.ranges.setdefault(name, rng)
    q.required = [f for f in FINDINGS if f in required]
    q.forbidden = [f for f in FINDINGS if f in forbidden and f not in required]
    for c in doc.spans["concepts"]:
        t = tags_of(c.label_)
        if "PATTERN" in t and ("lge_present" in q.required or lge_or_rwma):
            q.lge_pattern.extend(p for p in t["PATTERN"] if p not in q.lge_pattern)
        if "WALL" in t and lge_or_rwma:
            for w in t["WALL"][0].split("+"):
                if w not in q.territories:
                    q.territories.append(w)
        if not (set(t) & _KEEP_KINDS) and t.get("ANAT") != ["OTHER"]:
            used.update(range(c.start, c.end))
    q.diagnoses = list(dict.fromkeys(q.diagnoses))
    q.excluded_diagnoses = list(dict.fromkeys(q.excluded_diagnoses))
    words = [t.text for t in doc if t.i not in used and not t.is_punct and not t.is_space and t.lower_ not in _STOP
             and not t.like_num]
    q.free_text = " ".join(words)
    return q


def _speaks_of_ef(doc: Doc, ent: Span, concepts: dict[int, Span]) -> bool:
    """Whether a function statement is about the ejection fraction or systolic function (not e.g. "RV")."""
    for j in range(ent.sent.start, ent.sent.end):
        c = concepts.get(j)
        if c is not None and ("ef" in tags_of(c.label_).get("MEASURE", ()) or "func" in tags_of(c.label_).get(
                "ASPECT", ()) or "global_hypo" in tags_of(c.label_).get("STATE", ())):
            return True
    return False
