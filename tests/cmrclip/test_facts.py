"""Report language (cmrclip.language): facts from report text and queries parsed by the same rules.

The corpus below is written in the styles radiologists and cardiologists use (terse, dictated, structured,
British and American), not taken from the phantom's phrase bank; each entry lists only the facts it must give.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from cmrclip.language import FINDINGS, ReportFacts, extract_facts, extract_many, parse_query

P, A, U = "present", "absent", "uncertain"

# (text, expected findings, expected numbers, expected other fields)
CORPUS: list[tuple[str, dict[str, str], dict[str, float], dict[str, list[str]]]] = [
    ("EF 25%.", {"lv_systolic_dysfunction": P}, {"lvef": 25}, {}),
    ("Ejection fraction of 25 percent.", {}, {"lvef": 25}, {}),
    ("LVEF: 25 %", {}, {"lvef": 25}, {}),
    ("LVEF 20-25%, severely impaired.", {"lv_systolic_dysfunction": P}, {"lvef": 22.5}, {}),
    ("The LV ejection fraction was calculated at 61 per cent.", {"lv_systolic_dysfunction": A}, {"lvef": 61}, {}),
    ("Mildly impaired LV systolic function.", {"lv_systolic_dysfunction": P}, {"lvef": None}, {}),
    ("Severely reduced systolic function with global hypokinesia.", {"lv_systolic_dysfunction": P}, {}, {}),
    ("Left ventricular systolic function is normal.", {"lv_systolic_dysfunction": A}, {}, {}),
    ("Good biventricular systolic function.", {"lv_systolic_dysfunction": A, "rv_systolic_dysfunction": A}, {}, {}),
    (
        "The left ventricle is dilated (LVEDVi 131 ml/m2) with moderately impaired systolic function, LVEF 34%.",
        {"lv_dilation": P, "lv_systolic_dysfunction": P},
        {"lvedvi": 131, "lvef": 34},
        {},
    ),
    ("There is left ventricular dilatation.", {"lv_dilation": P}, {}, {}),
    ("LV dilation is noted.", {"lv_dilation": P}, {}, {}),
    ("Normal sized left ventricle.", {"lv_dilation": A}, {}, {}),
    ("The LV is not dilated and has normal wall thickness.", {"lv_dilation": A, "lv_hypertrophy": A}, {}, {}),
    ("Normal LV size and function.", {"lv_dilation": A, "lv_systolic_dysfunction": A}, {}, {}),
    ("LV size and systolic function are within normal limits.", {"lv_dilation": A, "lv_systolic_dysfunction": A}, {},
     {}),
    ("No evidence of left ventricular hypertrophy.", {"lv_hypertrophy": A}, {}, {}),
    ("Septal thickness 19 mm, consistent with HCM.", {"lv_hypertrophy": P}, {"max_wall_thickness_mm": 19},
     {"diagnoses": ["hypertrophic_cardiomyopathy"]}),
    ("Maximal end-diastolic wall thickness of 2.1 cm in the basal anteroseptum.", {"lv_hypertrophy": P},
     {"max_wall_thickness_mm": 21}, {}),
    ("Concentric LVH, max wall thickness 15mm.", {"lv_hypertrophy": P}, {"max_wall_thickness_mm": 15}, {}),
    ("The RV is moderately dilated with reduced systolic function (RVEF 32%).",
     {"rv_dilation": P, "rv_systolic_dysfunction": P}, {"rvef": 32}, {}),
    ("Right ventricular size and function are normal.", {"rv_dilation": A, "rv_systolic_dysfunction": A}, {}, {}),
    ("RV: EDVi 128 ml/m2, EF 41%.", {"rv_systolic_dysfunction": P}, {"rvedvi": 128, "rvef": 41}, {}),
    ("Normal right heart.", {"rv_dilation": A, "rv_systolic_dysfunction": A}, {}, {}),
    ("No late gadolinium enhancement to suggest scar or infiltration.", {"lge_present": A}, {}, {}),
    ("No evidence of myocardial fibrosis or scarring.", {"lge_present": A}, {}, {}),
    ("LGE: none.", {"lge_present": A}, {}, {}),
    (
        "There is transmural late gadolinium enhancement in the inferior wall in an RCA distribution, in keeping "
        "with a previous MI.",
        {"lge_present": P},
        {},
        {"lge_pattern": ["transmural"], "territories": ["inferior", "RCA"], "diagnoses": ["prior_infarction"]},
    ),
    (
        "Subendocardial scar involving the mid and apical anterior segments (LAD territory), >50% transmural.",
        {"lge_present": P},
        {},
        {"lge_pattern": ["subendocardial"], "territories": ["anterior", "LAD"]},
    ),
    ("Patchy mid-wall enhancement of the basal septum, non-ischemic pattern.", {"lge_present": P}, {},
     {"lge_pattern": ["mid-wall"], "territories": ["septal"]}),
    ("Subepicardial LGE in the basal to mid inferolateral wall, typical of myocarditis.", {"lge_present": P}, {},
     {"lge_pattern": ["subepicardial"], "territories": ["inferior", "lateral"], "diagnoses": ["myocarditis"]}),
    ("Global subendocardial enhancement with abnormal gadolinium kinetics; amyloid likely.", {"lge_present": P}, {},
     {"lge_pattern": ["diffuse", "subendocardial"], "uncertain_diagnoses": ["amyloidosis"]}),
    ("Cannot exclude a small focus of LGE at the inferior RV insertion point.", {"lge_present": U}, {}, {}),
    ("Akinesis of the mid and apical anterior wall.", {"regional_wall_motion_abnormality": P}, {}, {}),
    ("Hypokinetic inferolateral segments.", {"regional_wall_motion_abnormality": P}, {}, {}),
    ("No regional wall motion abnormalities.", {"regional_wall_motion_abnormality": A}, {}, {}),
    ("Normal regional wall motion.", {"regional_wall_motion_abnormality": A}, {}, {}),
    ("Small circumferential pericardial effusion without haemodynamic compromise.", {"pericardial_effusion": P}, {},
     {}),
    ("Trace pericardial fluid, not haemodynamically significant.", {"pericardial_effusion": P}, {}, {}),
    ("Bilateral pleural effusions. No pericardial effusion.", {"pericardial_effusion": A}, {}, {}),
    ("Pericardium is unremarkable.", {"pericardial_effusion": A}, {}, {}),
    ("Possible small pericardial effusion.", {"pericardial_effusion": U}, {}, {}),
    ("The left atrium is severely dilated.", {}, {}, {}),
    ("LVEF 25% (normal 57-77%).", {}, {"lvef": 25}, {}),
    ("LVEF 45%, previously 30%.", {}, {"lvef": 45}, {}),
    ("LVEDV 245 ml (128 ml/m2), LVESV 170 ml, LV mass 150 g (78 g/m2).", {},
     {"lvedv": 245, "lvedvi": 128, "lv_mass": 150, "lv_mass_index": 78}, {}),
    ("Myocardial oedema in the lateral wall; no LV dilation.", {"lv_dilation": A}, {}, {}),
    ("Findings are consistent with Takotsubo cardiomyopathy.", {}, {}, {"diagnoses": ["takotsubo"]}),
    ("Prominent trabeculation meeting criteria for LV non-compaction.", {}, {}, {"diagnoses": ["lv_non_compaction"]}),
    ("?Cardiac sarcoid. Patchy LGE.", {"lge_present": P}, {}, {"uncertain_diagnoses": ["sarcoidosis"]}),
    ("Low native T1, Anderson-Fabry disease likely.", {"lv_systolic_dysfunction": None}, {}, {}),
    ("No features to suggest cardiac amyloidosis.", {}, {}, {"excluded_diagnoses": ["amyloidosis"]}),
    (
        "Indication: previous MI, ?viability.\nFindings: Normal LV size. LVEF 55%. No LGE.\nConclusion: Normal CMR.",
        {"lv_dilation": A, "lge_present": A, "lv_systolic_dysfunction": A},
        {"lvef": 55},
        {"history": ["prior_infarction"], "diagnoses": ["normal"]},
    ),
    ("TECHNIQUE: LGE imaging 10 min after gadolinium.\nFINDINGS: No scar.", {"lge_present": A}, {}, {}),
    (
        "IMPRESSION: Dilated, severely impaired left ventricle (EF ~20%) with no myocardial scar. Mild RV "
        "dysfunction.",
        {"lv_dilation": P, "lv_systolic_dysfunction": P, "lge_present": A, "rv_systolic_dysfunction": P},
        {"lvef": 20},
        {},
    ),
]


@pytest.mark.parametrize(("text", "findings", "numbers", "other"), CORPUS, ids=[c[0][:40] for c in CORPUS])
def test_corpus(text, findings, numbers, other) -> None:
    facts = extract_facts(text)
    for name, want in findings.items():
        assert facts.findings.get(name) == want, (name, facts.findings)
    for name, want in numbers.items():
        got = getattr(facts, name)
        assert (got is None) if want is None else (got is not None and abs(got - want) <= 0.5), (name, got)
    for name, want in other.items():
        assert set(want) <= set(getattr(facts, name)), (name, getattr(facts, name))


def test_corpus_size() -> None:
    assert len(CORPUS) >= 40


def test_json_shape_and_round_trip() -> None:
    facts = extract_facts("Dilated LV, LVEF 28%. No LGE. Max wall 9 mm. RVEF 50%.")
    d = facts.to_json()
    for key in ("lvef", "rvef", "lvedvi", "rvedvi", "lv_mass_index", "max_wall_thickness_mm", "findings",
                "diagnoses", "lge_pattern", "territories"):
        assert key in d
    assert d["lvef"] == 28 and d["findings"]["lv_dilation"] == "present" and d["findings"]["lge_present"] == "absent"
    assert set(d["findings"]) <= set(FINDINGS) and set(d["findings"].values()) <= {P, A, U}
    assert ReportFacts.from_json(d) == facts


def test_empty_and_batch() -> None:
    assert extract_facts("").to_json()["findings"] == {}
    texts = ["EF 30%.", "", "No LGE."]
    assert [f.to_json() for f in extract_many(texts)] == [extract_facts(t).to_json() for t in texts]


# -------------------------------------------------------------------------------------------------------- queries
# (query, required, forbidden, ranges, other)
QUERIES: list[tuple[str, list[str], list[str], dict[str, tuple], dict]] = [
    ("thick septum with preserved ejection fraction", ["lv_hypertrophy"], ["lv_systolic_dysfunction"],
     {"lvef": (50, None)}, {"free_text": ""}),
    ("EF around 25 percent", [], [], {"lvef": (20, 30)}, {"free_text": ""}),
    ("dilated LV and a pericardial effusion", ["lv_dilation", "pericardial_effusion"], [], {}, {"free_text": ""}),
    ("no LGE", [], ["lge_present"], {}, {}),
    ("inferior wall LGE", ["lge_present"], [], {}, {"territories": ["inferior"]}),
    ("regional wall motion abnormality", ["regional_wall_motion_abnormality"], [], {}, {}),
    ("LVEF < 35", [], [], {"lvef": (None, 35)}, {"free_text": ""}),
    ("19 mm wall", [], [], {"max_wall_thickness_mm": (16, 22)}, {}),
    ("preserved EF", [], ["lv_systolic_dysfunction"], {"lvef": (50, None)}, {}),
    ("reduced EF", ["lv_systolic_dysfunction"], [], {"lvef": (None, 50)}, {}),
    ("severely reduced ejection fraction", ["lv_systolic_dysfunction"], [], {"lvef": (None, 30)}, {}),
    ("ejection fraction below 40%", [], [], {"lvef": (None, 40)}, {}),
    ("LVEF at least 55", [], [], {"lvef": (55, None)}, {}),
    ("LVEF 30-40%", [], [], {"lvef": (30, 40)}, {}),
    ("maximal wall thickness over 15 mm", [], [], {"max_wall_thickness_mm": (15, None)}, {}),
    ("late gadolinium enhancement present", ["lge_present"], [], {}, {"free_text": ""}),
    ("subendocardial LGE in the LAD territory", ["lge_present"], [], {},
     {"lge_pattern": ["subendocardial"], "territories": ["LAD"]}),
    ("mid-wall fibrosis of the septum", ["lge_present"], [], {}, {"lge_pattern": ["mid-wall"]}),
    ("dilated right ventricle with normal LV", ["rv_dilation"], ["lv_dilation", "lv_systolic_dysfunction"], {}, {}),
    ("RV dysfunction without RV dilatation", ["rv_systolic_dysfunction"], ["rv_dilation"], {}, {}),
    ("hypertrophic cardiomyopathy without LGE", [], ["lge_present"], {},
     {"diagnoses": ["hypertrophic_cardiomyopathy"], "free_text": "hypertrophic cardiomyopathy"}),
    ("Fabry disease", [], [], {}, {"diagnoses": ["fabry"], "free_text": "Fabry disease"}),
    ("cardiac sarcoid", [], [], {}, {"diagnoses": ["sarcoidosis"]}),
    ("no pericardial effusion, dilated LV", ["lv_dilation"], ["pericardial_effusion"], {}, {}),
    ("normal heart", [], [], {}, {}),
    ("LVEDVi > 120 ml/m2", [], [], {"lvedvi": (120, None)}, {}),
    ("hypokinesis of the anterior wall", ["regional_wall_motion_abnormality"], [], {}, {"territories": ["anterior"]}),
    ("transmural infarct", [], [], {}, {"diagnoses": ["prior_infarction"], "lge_pattern": ["transmural"]}),
    ("left atrial enlargement", [], ["lv_dilation"][:0], {}, {}),
]


@pytest.mark.parametrize(("query", "required", "forbidden", "ranges", "other"), QUERIES,
                         ids=[q[0] for q in QUERIES])
def test_queries(query, required, forbidden, ranges, other) -> None:
    q = parse_query(query)
    assert q.required == required, q
    assert q.forbidden == forbidden, q
    assert {k: tuple(v) for k, v in q.ranges.items()} == {k: tuple(v) for k, v in ranges.items()}, q
    for name, want in other.items():
        got = getattr(q, name)
        assert (got == want) if isinstance(want, str) else set(want) <= set(got), (name, got)


def test_query_count() -> None:
    assert len(QUERIES) >= 25


def test_matches() -> None:
    dcm = extract_facts("Dilated LV (LVEDVi 140 ml/m2), LVEF 24%. No LGE. Small pericardial effusion.")
    hcm = extract_facts("Asymmetric septal hypertrophy, 21 mm. Normal LV systolic function. Patchy mid-wall LGE.")
    vague = extract_facts("Severely impaired LV function.")
    infarct = extract_facts("Transmural LGE of the inferior wall (RCA territory). Inferior akinesis.")
    assert parse_query("EF around 25 percent").matches(dcm) is True
    assert parse_query("EF around 25 percent").matches(hcm) is False
    assert parse_query("EF around 25 percent").matches(vague) is None  # no number to check
    assert parse_query("reduced EF").matches(vague) is True
    assert parse_query("thick septum with preserved ejection fraction").matches(hcm) is True
    assert parse_query("thick septum with preserved ejection fraction").matches(dcm) is False
    assert parse_query("dilated LV and a pericardial effusion").matches(dcm) is True
    assert parse_query("no LGE").matches(dcm) is True and parse_query("no LGE").matches(hcm) is False
    assert parse_query("15 mm wall").matches(hcm) is False and parse_query("21 mm septum").matches(hcm) is True
    assert parse_query("inferior wall LGE").matches(infarct) is True
    assert parse_query("LGE in the RCA territory").matches(infarct) is True
    assert parse_query("anterior LGE").matches(infarct) is False
    assert parse_query("subendocardial LGE").matches(infarct) is False
    assert parse_query("regional wall motion abnormality").matches(infarct) is True
    assert parse_query("something unrelated").matches(dcm) is None
    assert parse_query("reduced EF").reasons(dcm) == ["lvef 24"] or "lvef 24" in parse_query("reduced EF").reasons(dcm)


# -------------------------------------------------------------------------------------------------------- phantom


def _phantom_reports(n: int, seed: int):
    """Phantom reports without rendering: the case's targets stand in for measurements read from the images."""
    from phantom.conditions import build_case, sample_condition
    from phantom.measure import THRESHOLDS as T
    from phantom.measure import Measurements
    from phantom.patients import make_patient
    from phantom.reports import write_report_and_truth

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        conds, sev = sample_condition(rng)
        spec = build_case(rng, conds, sev)
        bsa = float(rng.uniform(1.6, 2.2))
        wall = max(spec.wall_mm, spec.septal_mm)
        lvedv, rvedv = spec.lvedvi * bsa, spec.rvedvi * bsa
        m = Measurements(lvedv, lvedv * (1 - spec.lvef / 100), spec.lvef, spec.lvedvi, 12.6 * wall * bsa, wall, rvedv,
                         rvedv * (1 - spec.rvef / 100), spec.rvef, spec.rvedvi, spec.effusion_mm, bsa)
        wm = spec.wall_motion
        found = {
            "lv_dilation": m.lvedvi > T["lv_dilation_lvedvi"],
            "lv_systolic_dysfunction": m.lvef < T["lv_dysfunction_lvef"],
            "lv_hypertrophy": m.lv_max_wall_mm >= T["lv_hypertrophy_mm"],
            "rv_dilation": m.rvedvi > T["rv_dilation_rvedvi"],
            "rv_systolic_dysfunction": m.rvef < T["rv_dysfunction_rvef"],
            "lge_present": bool(spec.scars),
            "regional_wall_motion_abnormality": wm is not None and wm.motion < T["rwma_motion"],
            "pericardial_effusion": m.effusion_mm >= T["effusion_mm"],
        }
        date = dt.date(2021, 1, 1) + dt.timedelta(days=int(rng.integers(0, 900)))
        rep = write_report_and_truth(rng, spec, m, found, make_patient(rng, spec.age_range, date), f"A{i}", date, 1.5)
        out.append((spec, m, found, rep))
    return out


def test_phantom_reports_per_finding_accuracy() -> None:
    cases = _phantom_reports(300, seed=21)
    t0 = time.perf_counter()
    facts = extract_many([c[3].text for c in cases])
    seconds = time.perf_counter() - t0
    correct = dict.fromkeys(FINDINGS, 0)
    for (spec, m, found, rep), f in zip(cases, facts, strict=True):
        said = dict(found)  # what the report states: the truth, except where an error was planted
        if rep.report_error:
            kind, name = rep.report_error.split(":")
            said[name] = kind == "overcalled"
        for k in FINDINGS:
            correct[k] += (f.findings.get(k) in (P, U)) == said[k]
        assert f.lvef is not None and abs(f.lvef - round(m.lvef)) <= 2
        assert f.rvef is not None and abs(f.rvef - round(m.rvef)) <= 2
        if f.lvedvi is not None:
            assert abs(f.lvedvi - round(m.lvedvi)) <= 2
        if f.max_wall_thickness_mm is not None:
            assert abs(f.max_wall_thickness_mm - round(m.lv_max_wall_mm)) <= 2
        if rep.rare_diagnosis:
            assert rep.rare_diagnosis in f.diagnoses + f.uncertain_diagnoses + f.history, rep.text
        if spec.territory and said["lge_present"] and rep.report_error != "omitted:lge_present":
            assert f.walls() or spec.territory in f.territories, rep.text
    accuracy = {k: v / len(cases) for k, v in correct.items()}
    assert min(accuracy.values()) >= 0.98, accuracy
    assert sum(1 for c in cases if c[3].report_error) > 0 and sum(1 for c in cases if c[3].rare_diagnosis) > 0
    assert seconds < 30, seconds  # a few seconds on a free core; generous for shared CI machines
