"""The spaCy pipeline that reads report language: a blank English pipeline and rule components, no trained model.

Components, in order:

1. tokenizer: spaCy's English tokenizer, plus splits between a number and its unit ("19mm", "80ml/m2"), around
   ``/`` between numbers ("180/90"), en dashes in ranges ("20–25"), and ``=``, ``<``, ``>``, ``:`` before a number;
2. ``cmr_sections``: report headings (indication, technique, findings, impression...) as character ranges;
3. ``cmr_sentences``: sentence ends at ``.``, ``!``, ``;``, a line break, a trailing ``?`` and each heading;
4. ``cmr_concepts``: the lexicon (``lexicon.py``) by a case-insensitive PhraseMatcher, longest phrase first, as
   spans in ``doc.spans["concepts"]``, each labelled with its tags;
5. ``cmr_mentions``: per clause, what is said of which ventricle: a state ("dilated", "impaired", "normal") is tied
   to the aspects it speaks of ("size", "systolic function") and to the nearest ventricle, and becomes an entity
   labelled ``F:finding=abn|norm+...``; diagnoses become entities ``DX:name``;
6. ``negex`` three times (negspacy's NegEx, clinical termset): negation (``ent._.negex``), uncertainty
   (``ent._.uncertain``) and history (``ent._.historical``), each with its own termset. Cues that follow the
   entity ("LGE: absent", "effusion cannot be excluded") are read in a short window by ``cue_after``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache

import numpy
import spacy
from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
from negspacy.termsets import termset
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import compile_infix_regex, compile_prefix_regex, filter_spans

from cmrclip.language.lexicon import lexicon

# Section headings as radiologists write them (group name = section): the one table, also used by the report
# import (``indexer.reports.split_sections``) to store the impression and findings.
SECTION_HEADINGS = {
    "indication": r"indications?|clinical indications?|clinical (?:history|details|information|question)|history|"
    r"reason for (?:exam|examination|study|referral)|referral (?:reason|question)|clinical background|background",
    "technique": r"techniques?|protocol|sequences|methods?|procedure|contrast",
    "findings": r"findings|report|results|observations|description",
    "impression": r"impressions?|conclusions?|summary|opinion|comments?|interpretation|final diagnosis|diagnosis|"
    r"assessment",
    "comparison": r"comparison|prior studies?|previous studies",
    "recommendation": r"recommendations?|advice|plan",
}
HEADING = re.compile(
    r"^[ \t]*(?:" + "|".join(f"(?P<{k}>{v})" for k, v in SECTION_HEADINGS.items()) + r")[ \t]*(?::|-(?=\s)|$)",
    re.I | re.M,
)
# Sections whose words are no statement about this study (the question asked, how it was scanned, what to do next).
NOT_FINDINGS = {"indication", "technique", "comparison", "recommendation"}

CLAUSE_BREAKS = {",", ";", "but", "with", "whereas", "while", "although", "however", "though", "without", "(", ")",
                 "and/or", "except", "whilst", "plus", "-", "–"}
_TERMINATION = ["with", "and", "but", ";", "apart from", "however", "whereas", "while", "whilst", "although",
                "though", "except", "which", "consistent with", "in keeping with", "due to", "secondary to",
                "compatible with", "in the context of", ":", "(", ")"]
_NOT_NEGATION = {"rule out", "r/o", "ro", "evaluate for", "versus", "doubt", "rule him out", "rule her out",
                 "rule patient out", "rule the patient out", "declined", "denied", "denies", "denying"}
NEGATION_AFTER = ["absent", "not seen", "not present", "not identified", "not demonstrated", "none", "negative",
                  "excluded", "is excluded", "ruled out", "not detected", "is not seen", "not visualised",
                  "not visualized", "not evident", "nil", "none seen", "none identified", "was not seen",
                  "not appreciated", "not noted", "has resolved", "resolved", "no longer seen"]
UNCERTAIN_BEFORE = ["possible", "possibly", "probable", "probably", "likely", "may", "might", "could", "?", "query",
                    "questionable", "suspected", "suspicious for", "suspicion of", "suggestive of", "suggesting",
                    "cannot exclude", "can not exclude", "cannot rule out", "can't exclude", "can't rule out",
                    "cannot be excluded", "equivocal", "uncertain", "indeterminate", "borderline", "differential",
                    "differential diagnosis", "differentials include", "raise the possibility of",
                    "raises the possibility of", "concern for", "consider", "to exclude", "to rule out", "rule out",
                    "r/o", "would favour", "would favor", "favour", "favor", "presumed", "presumably", "may represent",
                    "could represent", "suggests", "question of", "unclear", "not certain", "ddx", "vs", "versus",
                    "evaluate for", "assess for", "?possible", "perhaps", "potentially", "eval for"]
UNCERTAIN_AFTER = ["likely", "cannot be excluded", "not excluded", "cannot be ruled out", "is suspected", "suspected",
                   "is possible", "possible", "probable", "?", "queried", "is likely", "not entirely excluded",
                   "is not excluded", "can't be excluded", "is questioned", "questionable", "equivocal", "is uncertain",
                   "to be considered", "should be considered", "is considered", "could be considered",
                   "not ruled out", "can not be excluded", "not fully excluded", "is not ruled out", "is queried",
                   "cannot be entirely excluded", "remains possible", "is not certain"]
HISTORY_BEFORE = ["history of", "known", "previous", "prior", "background of", "h/o", "hx of", "hx", "status post",
                  "s/p", "old", "previously", "pmh", "past medical history", "longstanding", "established",
                  "previously diagnosed", "k/c/o"]
_PSEUDO_EXTRA = ["cannot exclude", "can not exclude", "cannot be excluded", "not excluded", "cannot rule out",
                 "not ruled out", "can't exclude", "cannot be ruled out", "can't be excluded", "not entirely excluded",
                 "not fully excluded", "no change", "no interval change", "no significant change", "not only",
                 "no further", "not certain", "not be excluded", "no longer"]

if not Doc.has_extension("sections"):
    Doc.set_extension("sections", default=None)


def _tags(label: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tag in label.split("|"):
        kind, _, value = tag.partition(":")
        out.setdefault(kind, []).append(value)
    return out


@lru_cache(maxsize=4096)
def tags_of(label: str) -> dict[str, list[str]]:
    """``"ANAT:LV|ASPECT:func"`` -> ``{"ANAT": ["LV"], "ASPECT": ["func"]}`` (cached; treat as read-only)."""
    return _tags(label)


def lowers(doc: Doc) -> list[str]:
    """Lower-case token texts of a doc (computed once per doc)."""
    low = doc.user_data.get("lower")
    if low is None:
        low = doc.user_data["lower"] = [t.lower_ for t in doc]
    return low


def section_names(doc: Doc) -> list[str]:
    """The section of every token (``indication``, ``technique``, ``findings``, ``impression``, ``body``...)."""
    names = doc.user_data.get("section_names")
    if names is None:
        names = ["body"] * len(doc)
        for start, end, name in doc._.sections or ():
            names[start:end] = [name] * (end - start)
        doc.user_data["section_names"] = names
    return names


@Language.component("cmr_sections")
def sections_component(doc: Doc) -> Doc:
    """Token ranges of the report's sections; text before the first heading is ``body``, headings ``heading``."""
    text = doc.text
    starts = [t.idx for t in doc]
    marks = []
    for m in HEADING.finditer(text):
        a, b = bisect_left(starts, m.start()), bisect_left(starts, m.end())
        marks.append((a, b, next(k for k in SECTION_HEADINGS if m.group(k))))
    out, pos, name = [], 0, "body"
    for a, b, kind in marks:
        if a > pos:
            out.append((pos, a, name))
        out.append((a, b, "heading"))
        pos, name = b, kind
    out.append((pos, len(doc), name))
    doc._.sections = out
    return doc


@Language.component("cmr_sentences")
def sentences_component(doc: Doc) -> Doc:
    """Sentence starts after ``.`` ``!`` ``;``, a line break, a trailing ``?``, and at every section change."""
    if not len(doc):
        return doc
    sec = section_names(doc)
    texts = [t.text for t in doc]
    spaces = [t.whitespace_ for t in doc]
    flags = [True]
    for i in range(1, len(doc)):
        p = texts[i - 1]
        end = p in (".", "!", ";") or "\n" in p or "\n" in spaces[i - 1] or sec[i] != sec[i - 1]
        if not end and p == "?":
            end = bool(spaces[i - 1]) or "\n" in texts[i]
        flags.append(end)
    starts = numpy.array([1 if f else -1 for f in flags], dtype="int64").view("uint64").reshape(-1, 1)
    doc.from_array([SENT_START], starts)
    return doc


class Concepts:
    """Lexicon phrases as concept spans, longest first (``doc.spans['concepts']``)."""

    def __init__(self, nlp: Language):
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        self.labels: dict[int, str] = {}
        for phrase, label in lexicon().items():
            key = nlp.vocab.strings.add(label)
            self.labels[key] = label
            self.matcher.add(label, [nlp.make_doc(phrase)])

    def __call__(self, doc: Doc) -> Doc:
        spans = [Span(doc, s, e, label=m) for m, s, e in self.matcher(doc)]
        kept = [s for s in filter_spans(spans) if "IGNORE" not in tags_of(s.label_)]
        doc.spans["concepts"] = kept
        return doc


@Language.factory("cmr_concepts")
def make_concepts(nlp: Language, name: str) -> Concepts:
    return Concepts(nlp)


# (aspect, state) -> polarity of what is said; states missing here say nothing of that aspect.
_POLARITY = {
    ("size", "dilated"): "abn", ("size", "increased"): "abn", ("size", "size_normal"): "norm",
    ("size", "normal"): "norm",
    ("func", "impaired"): "abn", ("func", "global_hypo"): "abn", ("func", "normal"): "norm",
    ("func", "hyperdynamic"): "norm", ("func", "increased"): "norm", ("func", "low"): "abn",
    ("thick", "hypertrophy"): "abn", ("thick", "increased"): "abn", ("thick", "normal"): "norm",
    ("wm", "rwma"): "abn", ("wm", "normal"): "norm", ("wm", "impaired"): "abn",
    ("peri", "normal"): "norm", ("peri", "effusion"): "abn",
}
INTRINSIC = {"dilated": "size", "size_normal": "size", "impaired": "func", "global_hypo": "func",
             "hyperdynamic": "func", "hypertrophy": "thick", "rwma": "wm", "lge": "lge", "effusion": "peri"}
GENERIC = {"normal", "increased", "low"}
_FINDING = {
    ("LV", "size"): ["lv_dilation"], ("RV", "size"): ["rv_dilation"], ("BIV", "size"): ["lv_dilation", "rv_dilation"],
    ("LV", "func"): ["lv_systolic_dysfunction"], ("RV", "func"): ["rv_systolic_dysfunction"],
    ("BIV", "func"): ["lv_systolic_dysfunction", "rv_systolic_dysfunction"],
    ("LV", "thick"): ["lv_hypertrophy"], ("BIV", "thick"): ["lv_hypertrophy"], ("SEPTUM", "thick"): ["lv_hypertrophy"],
    ("SEPTUM", "size"): [], ("SEPTUM", "func"): ["lv_systolic_dysfunction"],
}
_ANY_ANAT = {"wm": ["regional_wall_motion_abnormality"], "peri": ["pericardial_effusion"], "lge": ["lge_present"]}


def _state(c: Span, nxt: Span | None) -> str | None:
    """The state a concept states, or None (a degree word such as "large" before a finding is no state)."""
    t = tags_of(c.label_)
    if "STATE" not in t:
        return None
    if "ADV" in t and nxt is not None and nxt.start - c.end <= 2 and "ANAT" not in tags_of(nxt.label_):
        return None
    return t["STATE"][0]


def _dist(a: Span, b: Span) -> int:
    return b.start - a.end if b.start >= a.end else (a.start - b.end if a.start >= b.end else 0)


def _nearest(target: Span, anats: list[Span]) -> Span | None:
    if not anats:
        return None
    return min(anats, key=lambda a: (_dist(target, a), a.start > target.start))


def _findings(anat: str, aspect: str) -> list[str]:
    if aspect in _ANY_ANAT:
        return _ANY_ANAT[aspect]
    return _FINDING.get((anat, aspect), [])


def _clauses(sent: Span, concepts: list[Span]) -> list[list[Span]]:
    out: list[list[Span]] = [[]]
    low = lowers(sent.doc)
    breaks = [i for i in range(sent.start, sent.end) if low[i] in CLAUSE_BREAKS]
    bi = 0
    for c in concepts:
        while bi < len(breaks) and breaks[bi] < c.start:
            if out[-1]:
                out.append([])
            bi += 1
        out[-1].append(c)
    return [c for c in out if c]


def mention_entities(doc: Doc) -> list[Span]:
    """Entities for what the text states: ``F:finding=pol+...`` on state words, ``DX:name`` on diagnoses."""
    concepts = list(doc.spans["concepts"])
    ents: list[Span] = []
    ci = 0
    for sent in doc.sents:
        sc = []
        while ci < len(concepts) and concepts[ci].start < sent.end:
            if concepts[ci].start >= sent.start:
                sc.append(concepts[ci])
            ci += 1
        if not sc:
            continue
        said: dict[int, tuple[Span, list[str]]] = {}
        prev_anat: str | None = None
        pending: Span | None = None  # a generic state of an earlier clause that a state-less clause continues
        for clause in _clauses(sent, sc):
            states = []
            for k, c in enumerate(clause):
                s = _state(c, clause[k + 1] if k + 1 < len(clause) else None)
                if s is not None:
                    states.append((c, s))
            anats = [c for c in clause if "ANAT" in tags_of(c.label_) and not any(c is s for s, _ in states)]
            aspects = [c for c in clause if "ASPECT" in tags_of(c.label_)]

            def anat_for(span: Span, anats=anats, inherited=prev_anat or "LV") -> str:
                own = tags_of(span.label_).get("ANAT")
                if own:
                    return own[0]
                near = _nearest(span, anats)
                return tags_of(near.label_)["ANAT"][0] if near is not None else inherited

            generic = [(c, s) for c, s in states if s in GENERIC]
            assigned: dict[int, list[Span]] = {c.start: [] for c, _ in generic}
            for a in aspects:
                aspect = tags_of(a.label_)["ASPECT"][0]
                claimed = any(INTRINSIC.get(s) == aspect and _dist(a, c) <= 3 for c, s in states if s not in GENERIC)
                if claimed:
                    continue
                if generic:
                    g = min(generic, key=lambda gs, a=a: _dist(a, gs[0]))[0]
                    assigned[g.start].append(a)
                elif pending is not None and not states:
                    said.setdefault(pending.start, (pending, []))[1].extend(
                        f"{f}={_POLARITY[(aspect, 'normal')]}"
                        for f in _findings(anat_for(a), aspect)
                        if (aspect, "normal") in _POLARITY
                    )
            for c, s in states:
                out: list[str] = []
                if s in GENERIC:
                    asp = assigned[c.start]
                    if asp:
                        for a in asp:
                            aspect = tags_of(a.label_)["ASPECT"][0]
                            if (aspect, s) in _POLARITY:
                                out += [f"{f}={_POLARITY[(aspect, s)]}" for f in _findings(anat_for(a), aspect)]
                    elif s == "normal" and anats:
                        anat = anat_for(c)
                        out += [f"{f}=norm" for asp_ in ("size", "func") for f in _findings(anat, asp_)]
                    pending = c if s == "normal" else pending
                else:
                    aspect = INTRINSIC[s]
                    anat = anat_for(c)
                    if s == "rwma" and anat == "RV" and not any("WALL" in tags_of(x.label_) for x in sc):
                        out.append("rv_systolic_dysfunction=abn")
                    elif aspect == "lge":
                        out.append("lge_present=abn")
                    elif (aspect, s) in _POLARITY:
                        out += [f"{f}={_POLARITY[(aspect, s)]}" for f in _findings(anat, aspect)]
                if out:
                    said.setdefault(c.start, (c, []))[1].extend(out)
            if anats:
                prev_anat = tags_of(anats[-1].label_)["ANAT"][0]
        for span, parts in said.values():
            if parts:
                ents.append(Span(doc, span.start, span.end, label="F:" + "+".join(dict.fromkeys(parts))))
        for c in sc:
            t = tags_of(c.label_)
            if "DX" in t:
                ents.append(Span(doc, c.start, c.end, label="DX:" + t["DX"][0]))
    return ents


@Language.component("cmr_mentions")
def mentions_component(doc: Doc) -> Doc:
    doc.ents = filter_spans(mention_entities(doc))
    return doc


def _termset(preceding: list[str], pseudo_extra: list[str], drop: set[str] = frozenset()) -> dict[str, list[str]]:
    base = termset("en_clinical").get_patterns()
    return {
        "pseudo_negations": sorted(set(base["pseudo_negations"]) | set(pseudo_extra)),
        "preceding_negations": sorted(set(preceding) - set(drop)),
        "following_negations": [],  # read by cue_after in a short window instead (NegEx has no window)
        "termination": sorted(set(base["termination"]) | set(_TERMINATION)),
    }


def _negation_termset() -> dict[str, list[str]]:
    base = termset("en_clinical").get_patterns()["preceding_negations"]
    extra = ["no evidence of", "no features of", "no signs of", "no sign of", "without evidence of", "nor", "neither",
             "negative for", "free of", "rather than", "no definite", "no significant", "no obvious", "no convincing",
             "no appreciable", "no discernible", "absence of", "not any", "no area of", "no areas of",
             "no focal", "no abnormal"]
    return _termset(list(base) + extra, _PSEUDO_EXTRA, _NOT_NEGATION)


def _tokenizer_infixes(nlp: Language) -> None:
    infixes = list(nlp.Defaults.infixes) + [
        r"(?<=[0-9])(?=[a-zA-Zµ%])",  # 19mm, 80ml, 25%
        r"(?<=[0-9])[/–—-](?=[0-9])",  # 180/90, 20–25
        r"[=<>≤≥~]",
        r"(?<=[a-zA-Z])[:](?=[0-9])",  # LVEF:25
        r"(?<=[0-9])[x×](?=[0-9])",
    ]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    prefixes = list(nlp.Defaults.prefixes) + [r"[~≈<>≤≥=]"]
    nlp.tokenizer.prefix_search = compile_prefix_regex(prefixes).search


class NegationScope:
    """NegEx reads to the end of a sentence; a comma ends a negation unless a list goes on ("no LGE, effusion or
    RWMA" keeps all three negated, "no effusion, dilated LV" does not negate the LV)."""

    def __init__(self, nlp: Language, negation: str):
        self.nlp, self.negation = nlp, negation

    def __call__(self, doc: Doc) -> Doc:
        negated = [e for e in doc.ents if e._.negex]
        if not negated:
            return doc
        low = lowers(doc)
        ends = sentence_ends(doc)
        preceding, _, _ = self.nlp.get_pipe(self.negation).process_negations(doc)
        cues = sorted(start for _, start, _ in preceding)
        for e in negated:
            before = [c for c in cues if c < e.start and ends[c] == ends[e.start]]
            if not before:
                continue
            commas = [j for j in range(before[-1], e.start) if low[j] == ","]
            if not commas:
                continue
            tail = low[commas[0] : min(ends[e.start], e.end + 3)]
            if "or" not in tail and "nor" not in tail:
                e._.negex = False
        return doc


@Language.factory("cmr_negation_scope", default_config={"negation": "negation"})
def make_negation_scope(nlp: Language, name: str, negation: str) -> NegationScope:
    return NegationScope(nlp, negation)




@lru_cache(maxsize=1)
def pipeline() -> Language:
    """The shared pipeline (built once per process; reading is thread-safe, building is not)."""
    nlp = spacy.blank("en")
    _tokenizer_infixes(nlp)
    nlp.add_pipe("cmr_sections")
    nlp.add_pipe("cmr_sentences")
    nlp.add_pipe("cmr_concepts")
    nlp.add_pipe("cmr_mentions")
    nlp.add_pipe("negex", name="negation", config={"neg_termset": _negation_termset(), "extension_name": "negex"})
    nlp.add_pipe("cmr_negation_scope")
    nlp.add_pipe(
        "negex",
        name="uncertainty",
        config={"neg_termset": _termset(UNCERTAIN_BEFORE, []), "extension_name": "uncertain"},
    )
    nlp.add_pipe(
        "negex",
        name="history",
        config={"neg_termset": _termset(HISTORY_BEFORE, []), "extension_name": "historical"},
    )
    return nlp


@lru_cache(maxsize=1)
def _after_cues() -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    nlp = pipeline()

    def toks(words: list[str]) -> list[tuple[str, ...]]:
        return sorted({tuple(t.lower_ for t in nlp.make_doc(w)) for w in words}, key=len, reverse=True)

    return toks(NEGATION_AFTER), toks(UNCERTAIN_AFTER)


def sentence_ends(doc: Doc) -> list[int]:
    """For every token, the index after its sentence (computed once per doc)."""
    ends = doc.user_data.get("sent_ends")
    if ends is None:
        ends = [0] * len(doc)
        for sent in doc.sents:
            ends[sent.start : sent.end] = [sent.end] * (sent.end - sent.start)
        doc.user_data["sent_ends"] = ends
    return ends


def cue_after(ent: Span, window: int = 4) -> str | None:
    """``"negated"`` / ``"uncertain"`` when a cue follows the entity closely ("LGE: none", "effusion cannot be
    excluded"), with only copulas and punctuation between."""
    neg, unc = _after_cues()
    doc = ent.doc
    low = lowers(doc)
    stop = sentence_ends(doc)[ent.start]
    words = low[ent.end : min(stop, ent.end + window + 6)]
    for i in range(min(len(words), window)):
        for kind, cues in (("uncertain", unc), ("negated", neg)):
            for cue in cues:
                if words[i] == cue[0] and tuple(words[i : i + len(cue)]) == cue:
                    return kind
        if words[i] not in _AFTER_FILLER:
            return None
    return None


_AFTER_FILLER = {":", "-", "is", "are", "was", "were", "be", "been", "=", "the", "a", "appears", "seems", "entirely",
                 "completely", "clearly", "definitely", "definite"}
