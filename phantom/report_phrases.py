"""Report wording as data: headings, synonyms, templates, hedges and incidental remarks.

Placeholders in braces are filled from the measurements ({lvef}, {lvedvi}, {wall}, {territory}, ...).
Each list is a set of interchangeable phrasings; reports.py draws from them.
"""

from __future__ import annotations

HEADINGS = {
    "indication": ["Indication:", "CLINICAL INDICATION:", "History:", "Clinical details:", "Reason for exam:"],
    "technique": ["Technique:", "TECHNIQUE:", "Protocol:", "Sequences:"],
    "findings": ["Findings:", "FINDINGS:", "Report:", "Results:"],
    "impression": ["IMPRESSION:", "Impression", "CONCLUSION:", "Summary:", "Opinion:", "Conclusion:"],
}

HEADER_LINES = [
    "Patient: {family}, {given_cap}  MRN: {mrn}  Acc: {acc}  Date: {date}",
    "Name: {given_cap} {family_cap} | DOB: {dob} | ID {mrn} | Accession {acc}",
    "{family}^{given} ({mrn}) - exam {acc} on {date_eu}",
    "CMR REPORT  Pt {family_cap}, {given_cap}  Hosp no {mrn}  Study date {date_eu}",
]

INDICATIONS = {
    "normal": [
        "Chest pain, ?cardiomyopathy.",
        "Palpitations. Structural heart disease?",
        "Abnormal ECG.",
        "Family history of cardiomyopathy, screening.",
        "Breathlessness on exertion.",
    ],
    "dilated_cardiomyopathy": [
        "Heart failure, dilated LV on echo.",
        "Breathlessness, reduced EF on echo, ?aetiology.",
        "New LV dysfunction. Ischaemic vs non-ischaemic?",
    ],
    "hypertrophic_cardiomyopathy": [
        "LVH on echo, ?HCM.",
        "Known HCM, annual review.",
        "Systolic murmur, family history of sudden cardiac death.",
    ],
    "prior_infarction": [
        "Previous MI, viability assessment.",
        "Known CAD, assess scar burden.",
        "Regional wall motion abnormality on echo.",
    ],
    "myocarditis": [
        "Chest pain, raised troponin, unobstructed coronaries.",
        "?Myocarditis after viral illness.",
        "Troponin rise, normal angiogram.",
    ],
    "amyloidosis": [
        "LVH with low voltage ECG, ?amyloid.",
        "Heart failure with preserved EF, thick walls on echo.",
        "?Infiltrative cardiomyopathy.",
    ],
    "rv_dilation": ["Dilated RV on echo.", "Pulmonary hypertension, RV assessment.", "?ARVC, palpitations."],
    "pericardial_effusion": [
        "Pericardial effusion on echo.",
        "Pleuritic chest pain, ?pericarditis.",
        "Breathlessness. Echo: effusion.",
    ],
}

TECHNIQUE = [
    "Cine SSFP imaging in standard long- and short-axis planes. Late gadolinium enhancement imaging "
    "{lge_delay} minutes after {dose} mmol/kg gadobutrol.",
    "Multiplanar cine imaging (bSSFP), LGE after intravenous gadolinium.",
    "{field} T scanner. Localisers, cines (2/3/4-chamber and SAX stack), T1 mapping, PSIR LGE.",
    "Standard CMR protocol: cine, native T1, late enhancement.",
]

# Every LV line states the LVEF exactly (units written as %, " %", "percent" or "per cent").
MEASURE_LINES = [
    "LVEDV {lvedv} mL ({lvedvi} mL/m2), LVESV {lvesv} mL, LVEF {lvef}%, LV mass {mass} g.",
    "LV: EDV {lvedv} ml, ESV {lvesv} ml, EF {lvef}%. Indexed EDV {lvedvi} ml/m².",
    "LV EDV/ESV {lvedv}/{lvesv} mL, EF {lvef} %, EDVi {lvedvi} mL/m2.",
    "LVEF: {lvef} %. LVEDVi: {lvedvi} mL/m², LV mass {mass}g.",
    "Left ventricular ejection fraction {lvef} percent, indexed end-diastolic volume {lvedvi} ml per m2.",
    "The LV ejection fraction is {lvef} per cent (EDV {lvedv} ml, EDVi {lvedvi} ml/m2, ESV {lvesv} ml).",
    "Volumes: LVEDV {lvedvi} ml/m2 (indexed), LVESV {lvesv} mls, LVEF={lvef}%, mass {mass} grams.",
    "LV ejection fraction of {lvef}%; indexed LVEDV {lvedvi}mls/m2.",
]
RV_MEASURE_LINES = [
    "RVEDV {rvedv} mL ({rvedvi} mL/m2), RVEF {rvef}%.",
    "RV: EDVi {rvedvi} ml/m², EF {rvef}%.",
    "RV EDV {rvedv} ml, RVEF {rvef} %.",
    "RVEF {rvef} percent, RVEDVi {rvedvi} ml/m².",
    "Right ventricular ejection fraction {rvef}%, RV end-diastolic volume {rvedvi} mL/m2 (indexed).",
    "RVEF: {rvef} %.",
]

SEVERITY_WORDS = {
    "mild": ["mildly", "mildly", "slightly"],
    "moderate": ["moderately", "moderately"],
    "severe": ["severely", "markedly", "severely"],
}

# Each finding has phrases for its normal and abnormal state. {sev} is an adverb such as "moderately".
FINDING_PHRASES = {
    "lv_size": {
        False: [
            "The left ventricle is normal in size.",
            "Normal LV dimensions.",
            "Non-dilated left ventricle.",
            "LV cavity size is within normal limits.",
            "LV not dilated.",
            "No LV dilatation.",
            "The LV is of normal size (EDVi {lvedvi} ml/m2).",
            "Normal left ventricular volumes.",
        ],
        True: [
            "The left ventricle is {sev} dilated (EDVi {lvedvi} mL/m2).",
            "{Sev} dilated LV.",
            "Enlarged left ventricle.",
            "LV dilatation, EDVi {lvedvi} ml/m2.",
            "{Sev} enlarged left ventricle.",
            "The left ventricular cavity is {sev} enlarged.",
            "Dilated LV, indexed EDV {lvedvi} mL/m².",
            "LV dilation (LVEDVi {lvedvi} ml/m2).",
        ],
    },
    "lv_function": {
        False: [
            "Normal LV systolic function (LVEF {lvef}%).",
            "Good LV systolic function, EF {lvef}%.",
            "LV systolic function is preserved, EF {lvef}%.",
            "Preserved left ventricular ejection fraction ({lvef} percent).",
            "LV systolic function normal; EF visually {lvef_lo}-{lvef_hi}%.",
            "Normal global LV function.",
            "The left ventricular systolic function is within normal limits.",
        ],
        True: [
            "{Sev} impaired LV systolic function (LVEF {lvef}%).",
            "{Sev} reduced left ventricular ejection fraction ({lvef}%).",
            "LVEF {lvef}%, global hypokinesis.",
            "{Sev} impaired systolic function.",
            "Global LV systolic function is {sev} reduced, EF visually estimated at {lvef_lo}-{lvef_hi}%.",
            "Systolic function is {sev} impaired (ejection fraction of {lvef} percent).",
            "The left ventricular ejection fraction is {sev} reduced at {lvef} %.",
            "{Sev} depressed LV systolic function.",
        ],
        "hyper": ["Hyperdynamic LV systolic function (LVEF {lvef}%).", "Vigorous LV function, EF {lvef}%."],
    },
    "lv_wall": {
        False: [
            "Normal wall thickness (max {wall} mm).",
            "No LV hypertrophy.",
            "Wall thickness normal.",
            "No evidence of left ventricular hypertrophy.",
            "Maximal wall thickness {wall} mm, within normal limits.",
            "Normal myocardial thickness.",
        ],
        "asymmetric": [
            "Asymmetric septal hypertrophy measuring {wall} mm.",
            "Asymmetric hypertrophy of the basal anteroseptum, maximal thickness {wall} mm.",
            "Septal hypertrophy to {wall} mm, no LVOT obstruction at rest.",
            "Hypertrophied interventricular septum ({wall} mm).",
            "ASH, basal septum {wall}mm.",
            "Hypertrophic septum, maximal wall thickness {wall} mm.",
        ],
        "concentric": [
            "Concentric LV hypertrophy (max {wall} mm).",
            "Diffuse LV wall thickening, up to {wall} mm.",
            "Increased wall thickness globally ({wall} mm).",
            "Concentric left ventricular hypertrophy, maximum wall thickness {wall} mm.",
            "The LV walls are thickened (max {wall}mm).",
        ],
    },
    "rwma": {
        True: [
            "{Motion} of the {walls} walls.",
            "Regional {motion_l} in the {territory} territory.",
            "{walls_cap} {motion_l}.",
            "Regional wall motion abnormality: {motion_l} of the {walls} segments.",
        ],
        False: ["No regional wall motion abnormality.", "Normal regional wall motion.", "No RWMA."],
    },
    "rv": {
        False: [
            "Normal RV size and function.",
            "The right ventricle is normal in size and systolic function.",
            "RV normal.",
            "RV size and function normal (RVEF {rvef}%).",
            "Normal right ventricular volumes and function.",
            "Non-dilated RV with preserved systolic function.",
        ],
        "dilated": [
            "The RV is {sev} dilated (RVEDVi {rvedvi} mL/m2).",
            "RV dilatation.",
            "{Sev} enlarged right ventricle.",
            "Dilated right ventricle (RVEDVi {rvedvi} ml/m²).",
        ],
        "impaired": [
            "RV systolic function is impaired (RVEF {rvef}%).",
            "Reduced RV function, RVEF {rvef}%.",
            "Impaired right ventricular systolic function.",
            "RV systolic function is {sev} reduced (RVEF {rvef} percent).",
        ],
        "preserved": [
            "RV systolic function is preserved (RVEF {rvef}%).",
            "Preserved RV systolic function.",
            "RV function normal, RVEF {rvef}%.",
        ],
    },
    "lge": {
        False: [
            "No late gadolinium enhancement.",
            "No myocardial scar or fibrosis.",
            "There is no LGE.",
            "No abnormal late enhancement.",
            "LGE: none.",
            "No focal fibrosis on late gadolinium imaging.",
            "Late enhancement imaging shows no scar.",
        ],
        "infarct_subendo": [
            "Subendocardial LGE in the {territory} territory consistent with prior infarction.",
            "Subendocardial late enhancement of the {walls} walls (<50% transmurality), viable.",
            "Infarct pattern LGE, {territory} territory, subendocardial.",
        ],
        "infarct_transmural": [
            "Transmural late enhancement of the {walls} walls, in keeping with previous "
            "myocardial infarction (non-viable).",
            "Full thickness {territory} territory infarct.",
            "Transmural LGE in the {territory} territory.",
        ],
        "subepicardial": [
            "Subepicardial LGE in the inferolateral wall, non-ischaemic pattern.",
            "Patchy subepicardial late enhancement of the lateral wall.",
            "Non-ischaemic (epicardial) enhancement inferolaterally.",
        ],
        "midwall_septal": [
            "Mid-wall septal LGE (non-ischaemic).",
            "Linear mid-wall enhancement of the septum.",
            "Septal midwall fibrosis.",
        ],
        "diffuse_subendo": [
            "Diffuse subendocardial LGE with difficulty nulling the myocardium.",
            "Global subendocardial late enhancement and abnormal gadolinium kinetics.",
            "Diffuse late enhancement, myocardium difficult to null.",
        ],
        "insertion_points": [
            "Patchy LGE at the RV insertion points.",
            "Focal enhancement at the superior and inferior RV insertion points.",
            "Patchy mid-wall LGE in the hypertrophied segments.",
        ],
    },
    "effusion": {
        False: [
            "No pericardial effusion.",
            "Pericardium normal.",
            "No effusion.",
            "Pericardium unremarkable, no effusion.",
            "No pericardial effusion or thickening.",
        ],
        True: [
            "{Size} pericardial effusion (max depth {eff} mm).",
            "Circumferential pericardial effusion measuring {eff} mm, no features of tamponade.",
            "{Size} pericardial effusion.",
        ],
    },
}

EFFUSION_SIZE = {"mild": ["Small", "Small"], "moderate": ["Moderate"], "severe": ["Large", "Large volume"]}
MOTION_WORDS = {
    "hypo": ["Hypokinesis", "hypokinesis"],
    "a": ["Akinesis", "akinesis"],
    "dys": ["Dyskinesis", "dyskinesis"],
}
TERRITORY_WALLS = {
    "LAD": "anterior, anteroseptal and apical",
    "RCA": "inferior and inferoseptal",
    "LCx": "inferolateral and anterolateral",
}

DIAGNOSES = {
    "normal": [
        "Normal cardiac MRI.",
        "Structurally normal heart with normal biventricular function, no LGE.",
        "No evidence of cardiomyopathy.",
        "Normal study.",
    ],
    "dilated_cardiomyopathy": [
        "Dilated cardiomyopathy.",
        "Appearances in keeping with DCM.",
        "Non-ischaemic dilated cardiomyopathy.",
        "Findings consistent with dilated cardiomyopathy.",
    ],
    "hypertrophic_cardiomyopathy": [
        "Hypertrophic cardiomyopathy (asymmetric septal variant).",
        "Findings consistent with HCM.",
        "Asymmetric septal hypertrophy in keeping with hypertrophic cardiomyopathy.",
    ],
    "prior_infarction": [
        "Prior {territory} territory myocardial infarction.",
        "Old {territory} infarct.",
        "Ischaemic heart disease with previous {territory} infarction.",
    ],
    "myocarditis": [
        "Findings consistent with myocarditis.",
        "Non-ischaemic LGE pattern suggestive of myocarditis.",
        "Appearances of acute myocarditis.",
    ],
    "amyloidosis": [
        "Appearances typical for cardiac amyloidosis.",
        "Features suggestive of infiltrative cardiomyopathy, likely amyloid.",
        "Cardiac amyloidosis.",
    ],
    "rv_dilation": [  # function is the findings' to say: a volume-loaded RV still contracts well
        "Dilated right ventricle.",
        "RV dilatation, ?pulmonary hypertension.",
        "Right ventricular dilatation.",
    ],
    "pericardial_effusion": ["{Size} pericardial effusion.", "Pericardial effusion without tamponade."],
}

HEDGES = ["likely", "probably", "possibly", "cannot exclude", "suggestive of", "in keeping with", "consistent with"]
HEDGED_DIAGNOSES = {
    "dilated_cardiomyopathy": "{hedge} dilated cardiomyopathy",
    "hypertrophic_cardiomyopathy": "{hedge} hypertrophic cardiomyopathy",
    "myocarditis": "{hedge} myocarditis",
    "amyloidosis": "{hedge} cardiac amyloidosis",
    "prior_infarction": "{hedge} prior {territory} infarction",
    "rv_dilation": "RV dilatation, {hedge} pulmonary hypertension",
}

INCIDENTALS = [
    "Small hiatus hernia.",
    "Incidental simple liver cyst.",
    "Small bilateral pleural effusions.",
    "Mild mitral regurgitation.",
    "Trivial tricuspid regurgitation.",
    "Basal atelectasis.",
    "Aortic root normal in calibre.",
    "Left atrium is mildly dilated.",
    "Bicuspid aortic valve not excluded on cine imaging.",
    "No myocardial oedema on T2-weighted imaging.",
    "Haemodynamically insignificant mitral regurgitation.",
]

COMPARISONS = [
    "Compared with the study of {prior}, {change}.",
    "Comparison: CMR {prior}; {change}.",
    "Prior study from {prior} reviewed: {change}.",
]
CHANGES = {
    "same": ["appearances are unchanged", "no significant interval change", "stable"],
    "better": ["LV function has improved", "interval improvement", "findings are less pronounced"],
    "worse": ["interval deterioration", "LV function has worsened", "progression since"],
}

# Rare diagnoses a few reports name, by the case conditions they fit (the images are those of the condition).
RARE_DIAGNOSES = {
    "fabry": (
        ("hypertrophic_cardiomyopathy", "amyloidosis"),
        [
            "Anderson-Fabry disease should be considered (low native T1).",
            "Known Anderson-Fabry disease.",
            "Appearances would fit Fabry cardiomyopathy.",
        ],
    ),
    "lv_non_compaction": (
        ("dilated_cardiomyopathy",),
        [
            "Prominent trabeculation with a non-compacted to compacted ratio of 2.6 in diastole, meeting criteria "
            "for LV non-compaction.",
            "Hypertrabeculated apex and lateral wall, in keeping with left ventricular non-compaction.",
        ],
    ),
    "sarcoidosis": (
        ("myocarditis",),
        [
            "Given the patchy distribution, cardiac sarcoidosis is in the differential.",
            "Known systemic sarcoidosis; appearances are compatible with cardiac involvement.",
        ],
    ),
    "takotsubo": (
        ("dilated_cardiomyopathy",),
        [
            "Apical ballooning with basal hyperkinesis, consider Takotsubo cardiomyopathy.",
            "Pattern suggestive of Takotsubo syndrome; follow-up imaging advised.",
        ],
    ),
    "amyloidosis": (
        ("amyloidosis",),
        ["Pattern favours transthyretin (ATTR) amyloidosis; bone scintigraphy recommended."],
    ),
}

# Planted report errors: the sentence a report writes instead of the truth ("missed": a normal one;
# "overcalled": an abnormal one) for a finding; "omitted" leaves the finding out.
OVERCALLS = {
    "lge_present": ["Focal mid-wall LGE in the basal inferolateral wall.", "Small area of subepicardial LGE."],
    "pericardial_effusion": ["Small pericardial effusion.", "Trace pericardial effusion, 4 mm."],
    "lv_dilation": ["Mildly dilated LV.", "The left ventricle is mildly enlarged."],
}

# British spelling -> American, applied to a whole report when its author writes American English.
AMERICAN = {
    "dilatation": "dilation",
    "ischaemic": "ischemic",
    "Ischaemic": "Ischemic",
    "oedema": "edema",
    "haemodynamic": "hemodynamic",
    "aetiology": "etiology",
    "calibre": "caliber",
    "Localisers": "Localizers",
    "favours": "favors",
    "anaemia": "anemia",
    "generalised": "generalized",
    "per cent": "percent",
}
