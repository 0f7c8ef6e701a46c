"""The report language as data: words and phrases, each with the concept tags it carries.

A phrase maps to tags ``KIND:value`` (several joined by ``|``):

* ``ANAT`` what a statement is about: ``LV``, ``RV``, ``BIV`` (both ventricles), ``SEPTUM`` (an LV wall), ``OTHER``
  (atria, aorta, valves, pleura...: statements about them are no finding of ours).
* ``ASPECT`` what of it: ``size``, ``func`` (systolic function), ``thick`` (wall thickness, mass), ``wm`` (regional
  wall motion), ``peri`` (pericardium).
* ``STATE`` what is said of it: ``dilated``, ``size_normal``, ``impaired``, ``normal`` (generic: takes the aspects of
  its clause), ``increased`` (generic), ``hyperdynamic``, ``hypertrophy``, ``rwma``, ``global_hypo``, ``lge``,
  ``effusion``.
* ``ADV`` degree (``mild``, ``moderate``, ``severe``), ``DX`` a diagnosis, ``PATTERN`` an LGE pattern, ``WALL`` a wall
  or coronary territory, ``MEASURE`` what a number next to it measures, ``IGNORE`` phrases that block a shorter match
  (``pleural effusion`` is no pericardial effusion, ``LGE imaging`` is a technique).

British and American spellings are both listed. Matching is case-insensitive over whole tokens; the longest phrase
wins where phrases overlap.
"""

from __future__ import annotations

FINDINGS = (
    "lv_dilation",
    "lv_systolic_dysfunction",
    "lv_hypertrophy",
    "rv_dilation",
    "rv_systolic_dysfunction",
    "lge_present",
    "regional_wall_motion_abnormality",
    "pericardial_effusion",
)
LGE_PATTERNS = ("subendocardial", "transmural", "mid-wall", "subepicardial", "diffuse", "insertion-point")
WALLS = ("anterior", "inferior", "lateral", "septal", "apical")
VESSELS = ("LAD", "RCA", "LCx")
# A coronary territory names the walls it supplies (a wall does not name its vessel: non-ischaemic scar has none).
VESSEL_WALLS = {"LAD": ("anterior", "septal", "apical"), "RCA": ("inferior", "septal"), "LCx": ("lateral",)}
MAIN_WALL = {"LAD": "anterior", "RCA": "inferior", "LCx": "lateral"}

_LV = ["lv", "left ventricle", "left ventricular", "left-ventricular", "left ventricles", "lv cavity",
       "left ventricular cavity", "lv myocardium", "left heart"]
_RV = ["rv", "right ventricle", "right ventricular", "right-ventricular", "rv cavity", "right ventricular cavity",
       "right heart"]
_BIV = ["biventricular", "bi-ventricular", "both ventricles", "ventricles", "ventricular", "biventricle"]
_SEPTUM = ["septum", "septal", "interventricular septum", "ivs", "anteroseptum", "basal septum", "septal wall",
           "basal anteroseptum", "interventricular septal"]
_OTHER = ["left atrium", "left atrial", "la", "right atrium", "right atrial", "ra", "atria", "atrial", "biatrial",
          "bi-atrial", "aorta", "aortic", "aortic root", "ascending aorta", "mitral", "tricuspid", "pulmonary artery",
          "pulmonary arteries", "pa", "ivc", "inferior vena cava", "liver", "lungs", "lung", "valve", "valves",
          "lvot", "rvot", "left ventricular outflow tract", "right ventricular outflow tract", "coronary sinus",
          "pulmonary veins", "thymus", "spleen", "kidney", "sinus", "sinuses", "papillary muscles"]

_SIZE = ["size", "sizes", "dimension", "dimensions", "volume", "volumes", "cavity size", "cavity", "calibre", "caliber",
         "end-diastolic volume", "end diastolic volume", "diameter", "diameters"]
_FUNC = ["function", "systolic function", "global function", "contractility", "contraction", "contractile function",
         "systolic performance", "global systolic function", "pump function", "performance"]
_EF = ["ef", "ejection fraction", "ejection fractions", "systolic ejection fraction", "ejection-fraction"]
_THICK = ["wall thickness", "wall thicknesses", "thickness", "myocardial thickness",
          "myocardial wall thickness", "walls", "wall"]
_MASS = ["mass", "myocardial mass", "lv mass", "left ventricular mass"]
_WM = ["wall motion", "regional wall motion", "regional function", "regional contractility", "segmental wall motion",
       "regional wall-motion", "wall-motion", "regional systolic function"]
_PERI = ["pericardium", "pericardial space", "pericardial sac"]

_DILATED = ["dilated", "dilatation", "dilation", "dilatated", "enlarged", "enlargement", "large", "increased in size",
            "increased size", "increased volumes", "increased volume", "ectatic", "dilate", "dilates", "big",
            "cardiomegaly", "dilating"]
_SIZE_NORMAL = ["non-dilated", "non dilated", "nondilated", "undilated", "normal-sized", "normal sized",
                "normally sized", "not enlarged", "small"]
_IMPAIRED = ["impaired", "impairment", "reduced", "reduction", "depressed", "decreased", "poor", "poorly",
             "diminished", "dysfunction", "dysfunctional", "compromised", "suboptimal",
             "globally hypokinetic", "hypocontractile", "weak", "failing", "globally reduced", "systolic dysfunction",
             "systolic impairment", "systolic failure", "impaired contractility"]
_NORMAL = ["normal", "normally", "preserved", "good", "within normal limits", "within normal range",
           "within the normal range", "unremarkable", "satisfactory", "intact", "maintained", "wnl", "nl",
           "normal range", "okay", "ok", "healthy", "adequate", "retained", "spared"]
_LOW = ["low", "lowered", "low-normal", "below normal"]  # generic: low function is impaired, low T1 is nothing
_INCREASED = ["increased", "elevated", "raised", "high", "higher", "greater", "prominent"]
_HYPERDYN = ["hyperdynamic", "vigorous", "supranormal", "supra-normal", "hypercontractile", "hyperkinetic",
             "brisk", "high-normal", "high normal"]
_HYPERTROPHY = ["hypertrophy", "hypertrophied", "hypertrophic", "thickened", "thickening", "thick", "lvh",
                "left ventricular hypertrophy", "ash", "asymmetric septal hypertrophy", "hypertrophies"]
_RWMA = ["regional wall motion abnormality", "regional wall motion abnormalities", "rwma", "rwmas",
         "wall motion abnormality", "wall motion abnormalities", "segmental wall motion abnormality",
         "segmental wall motion abnormalities", "regional dysfunction", "regional hypokinesis",
         "regional hypokinesia", "regional akinesis", "regional akinesia", "regional dyskinesis",
         "regional dyskinesia", "hypokinesis", "hypokinesia", "akinesis", "akinesia", "dyskinesis", "dyskinesia",
         "hypokinetic", "akinetic", "dyskinetic", "aneurysm", "aneurysmal", "wall motion abnormal",
         "regional hypokinetic", "regional wall motion defect", "wall motion defect", "segmental hypokinesis",
         "segmental hypokinesia", "regional contraction abnormality"]
_GLOBAL_HYPO = ["global hypokinesis", "global hypokinesia", "globally hypokinetic", "diffuse hypokinesis",
                "diffuse hypokinesia", "diffusely hypokinetic", "generalised hypokinesis", "generalized hypokinesis",
                "global hypokinesis of the left ventricle", "global lv hypokinesis",
                "global left ventricular hypokinesis",
                "globally impaired", "global impairment"]
_LGE = ["late gadolinium enhancement", "lge", "late enhancement", "delayed enhancement", "late gadolinium",
        "delayed gadolinium enhancement", "enhancement", "scar", "scarring", "fibrosis", "myocardial scar",
        "myocardial fibrosis", "replacement fibrosis", "hyperenhancement", "delayed hyperenhancement",
        "late hyperenhancement", "late-gadolinium enhancement", "enhancing", "enhances", "scarred"]
_EFFUSION = ["pericardial effusion", "pericardial effusions", "effusion", "pericardial fluid",
             "fluid in the pericardial space", "fluid in the pericardium", "pericardial collection",
             "fluid around the heart", "pericardial fluid collection", "effusions"]

_ADV = {
    "mild": ["mild", "mildly", "slight", "slightly", "minimal", "minimally", "borderline", "trivial", "trivially",
             "minor", "small"],
    "moderate": ["moderate", "moderately", "mild to moderate", "mild-to-moderate", "mild-moderate", "mild/moderate",
                 "mildly to moderately"],
    "severe": ["severe", "severely", "markedly", "marked", "significantly", "significant", "grossly", "gross",
               "very", "extremely", "profoundly", "moderately to severely", "moderate to severe",
               "moderate-to-severe", "moderate-severe", "large", "substantially", "considerably"],
}

DIAGNOSES: dict[str, list[str]] = {
    "normal": ["normal study", "normal cardiac mri", "normal cmr", "normal cardiac magnetic resonance",
               "structurally normal heart", "normal examination", "normal scan", "structurally and functionally normal",
               "normal cardiac mr", "no structural heart disease"],
    "dilated_cardiomyopathy": ["dilated cardiomyopathy", "dcm", "non-ischaemic dilated cardiomyopathy",
                               "non-ischemic dilated cardiomyopathy", "nonischemic dilated cardiomyopathy",
                               "congestive cardiomyopathy", "dilated non-ischaemic cardiomyopathy",
                               "dilated non-ischemic cardiomyopathy", "idiopathic dilated cardiomyopathy"],
    "hypertrophic_cardiomyopathy": ["hypertrophic cardiomyopathy", "hcm", "hocm",
                                    "hypertrophic obstructive cardiomyopathy",
                                    "apical hcm", "apical hypertrophic cardiomyopathy",
                                    "hypertrophic non-obstructive cardiomyopathy"],
    "prior_infarction": ["myocardial infarction", "mi", "infarct", "infarction", "infarcts", "infarcted", "stemi",
                         "nstemi", "old infarct", "previous infarct", "prior infarct", "ischaemic scar",
                         "ischemic scar", "infarct scar", "myocardial infarct", "heart attack"],
    "myocarditis": ["myocarditis", "myopericarditis", "perimyocarditis", "myo-pericarditis",
                    "inflammatory cardiomyopathy", "acute myocarditis", "viral myocarditis"],
    "amyloidosis": ["amyloidosis", "amyloid", "cardiac amyloid", "cardiac amyloidosis", "attr", "attr amyloidosis",
                    "al amyloidosis", "transthyretin amyloidosis", "amyloid cardiomyopathy", "transthyretin"],
    "fabry": ["fabry", "fabry disease", "fabry's disease", "anderson-fabry", "anderson-fabry disease",
              "anderson fabry disease", "anderson fabry"],
    "lv_non_compaction": ["non-compaction", "noncompaction", "non compaction", "lvnc", "lv non-compaction",
                          "left ventricular non-compaction", "left ventricular noncompaction",
                          "non-compaction cardiomyopathy", "hypertrabeculation", "excessive trabeculation",
                          "lv non compaction", "noncompaction cardiomyopathy"],
    "sarcoidosis": ["sarcoidosis", "sarcoid", "cardiac sarcoidosis", "cardiac sarcoid", "sarcoid heart disease"],
    "takotsubo": ["takotsubo", "tako-tsubo", "takotsubo cardiomyopathy", "takotsubo syndrome", "stress cardiomyopathy",
                  "apical ballooning", "apical ballooning syndrome", "broken heart syndrome",
                  "stress-induced cardiomyopathy"],
    "arvc": ["arvc", "arrhythmogenic right ventricular cardiomyopathy", "arrhythmogenic cardiomyopathy",
             "arrhythmogenic right ventricular dysplasia", "arvd"],
    "pulmonary_hypertension": ["pulmonary hypertension", "pulmonary arterial hypertension", "pah"],
    "pericarditis": ["pericarditis", "constrictive pericarditis", "pericardial constriction"],
}
RARE_DIAGNOSES = ("fabry", "lv_non_compaction", "sarcoidosis", "takotsubo", "amyloidosis")

_PATTERN = {
    "subendocardial": ["subendocardial", "sub-endocardial", "endocardial", "non-transmural", "subendocardium"],
    "transmural": ["transmural", "full thickness", "full-thickness", "near-transmural", "near transmural"],
    "mid-wall": ["mid-wall", "midwall", "mid wall", "mid-myocardial", "midmyocardial", "mid myocardial",
                 "intramyocardial", "intra-myocardial", "mid-septal"],
    "subepicardial": ["subepicardial", "sub-epicardial", "epicardial", "subepicardium"],
    "diffuse": ["diffuse", "diffusely", "global", "globally", "circumferential", "widespread", "generalised",
                "generalized"],
    "insertion-point": ["insertion point", "insertion points", "insertion-point", "rv insertion point",
                        "rv insertion points", "right ventricular insertion points", "hinge point", "hinge points",
                        "insertion sites", "insertion site"],
}
_WALL = {
    "anterior": ["anterior", "anteriorly"],
    "inferior": ["inferior", "inferiorly", "basal inferior", "diaphragmatic"],
    "lateral": ["lateral", "laterally", "posterolateral", "posterior"],
    "septal": ["septal", "septum", "interventricular septum", "anteroseptum", "inferoseptum"],
    "apical": ["apical", "apex", "apically"],
    "anterior+septal": ["anteroseptal", "antero-septal", "anteroseptum", "anteroseptally"],
    "inferior+septal": ["inferoseptal", "infero-septal", "inferoseptum", "inferoseptally"],
    "inferior+lateral": ["inferolateral", "infero-lateral", "inferolaterally", "inferolateral wall",
                         "inferoposterior", "posterolateral"],
    "anterior+lateral": ["anterolateral", "antero-lateral", "anterolaterally"],
    "LAD": ["lad", "left anterior descending", "left anterior descending artery", "lad territory", "lad artery",
            "diagonal"],
    "RCA": ["rca", "right coronary", "right coronary artery", "rca territory", "pda", "posterior descending"],
    "LCx": ["lcx", "cx", "circumflex", "left circumflex", "circumflex artery", "lcx territory", "om",
            "obtuse marginal", "lcx artery"],
}

_MEASURE = {
    "ef": ["ef", "ejection fraction", "lvef", "rvef", "ejection-fraction", "ejection fractions"],
    "edv": ["edv", "end-diastolic volume", "end diastolic volume", "lvedv", "rvedv", "edvs", "diastolic volume"],
    "edvi": ["edvi", "lvedvi", "rvedvi", "indexed edv", "edv index", "edv indexed", "indexed end-diastolic volume",
             "indexed end diastolic volume", "end-diastolic volume index", "end diastolic volume index",
             "edvi/bsa", "edv/bsa", "lvedv/bsa", "rvedv/bsa", "lvedv index", "rvedv index", "lvedv indexed",
             "rvedv indexed", "indexed lvedv", "indexed rvedv", "edv/m2"],
    "esv": ["esv", "end-systolic volume", "end systolic volume", "lvesv", "rvesv", "esvi", "lvesvi", "rvesvi"],
    "mass": ["mass", "lv mass", "myocardial mass", "lvm", "left ventricular mass"],
    "massi": ["mass index", "lv mass index", "lvmi", "indexed mass", "indexed lv mass", "mass indexed",
              "lv mass indexed", "left ventricular mass index", "mass/bsa"],
    "wall": ["wall thickness", "thickness", "wall", "walls", "septum", "septal", "ivs", "anteroseptum", "thick",
             "thickened", "thickening", "hypertrophy", "hypertrophied", "lvh", "max wall", "maximal wall thickness",
             "maximum wall thickness", "septal thickness", "interventricular septum", "mwt", "wt", "inferoseptum",
             "maximal thickness", "maximum thickness"],
    "effusion": ["effusion", "fluid", "depth", "rim", "pericardial effusion", "collection"],
}

# Longer phrases that must not read as their shorter parts.
IGNORE = ["pleural effusion", "pleural effusions", "pleural fluid", "lge imaging", "lge images", "lge image",
          "lge sequence", "lge sequences", "late gadolinium enhancement imaging", "late enhancement imaging",
          "late gadolinium enhancement images", "late enhancement images", "psir lge", "lge acquisition",
          "on lge", "lge was performed", "lge performed", "lge assessment", "lge protocol", "early enhancement",
          "early gadolinium enhancement", "first pass", "first-pass", "contrast enhancement", "contrast-enhanced",
          "lge imaging was performed", "delayed enhancement imaging", "after gadolinium", "ischaemic vs",
          "non-ischaemic", "non-ischemic", "nonischaemic", "nonischemic", "mitral valve",
          "low voltage", "dilated coronary", "high signal", "normal variant", "rv insertion", "normal t1",
          "normal t2", "thickened pericardium", "pericardial thickening", "pericardial thickness",
          "dilated aortic root", "abdominal", "ascites", "left atrial enlargement", "normal limits for age",
          "diastolic dysfunction", "diastolic function", "impaired relaxation", "impaired diastolic function",
          "normal sinus rhythm", "sinus rhythm", "ischaemic heart disease", "ischemic heart disease",
          "coronary artery disease", "wall motion abnormalities on echo", "cavity obliteration", "hepatic",
          "good image quality", "image quality", "good quality"]


def _entries() -> list[tuple[str, str]]:
    """(phrase, tag) pairs; one phrase may carry several tags (merged by the caller)."""
    out: list[tuple[str, str]] = []

    def add(words: list[str], tag: str) -> None:
        out.extend((w, tag) for w in words)

    add(_LV, "ANAT:LV")
    add(_RV, "ANAT:RV")
    add(_BIV, "ANAT:BIV")
    add(_SEPTUM, "ANAT:SEPTUM")
    add(_SEPTUM, "WALL:septal")
    add(_OTHER, "ANAT:OTHER")
    add(_SIZE, "ASPECT:size")
    add(_FUNC, "ASPECT:func")
    add(_EF, "ASPECT:func")
    add(_THICK, "ASPECT:thick")
    add(_MASS, "ASPECT:thick")
    add(_WM, "ASPECT:wm")
    add(_PERI, "ASPECT:peri")
    add(_DILATED, "STATE:dilated")
    add(_SIZE_NORMAL, "STATE:size_normal")
    add(_IMPAIRED, "STATE:impaired")
    add(_NORMAL, "STATE:normal")
    add(_INCREASED, "STATE:increased")
    add(_LOW, "STATE:low")
    add(_HYPERDYN, "STATE:hyperdynamic")
    add(_HYPERTROPHY, "STATE:hypertrophy")
    add(_RWMA, "STATE:rwma")
    add(_GLOBAL_HYPO, "STATE:global_hypo")
    add(_LGE, "STATE:lge")
    add(_EFFUSION, "STATE:effusion")
    for level, words in _ADV.items():
        add(words, f"ADV:{level}")
    for name, words in DIAGNOSES.items():
        add(words, f"DX:{name}")
    for name, words in _PATTERN.items():
        add(words, f"PATTERN:{name}")
    for name, words in _WALL.items():
        add(words, f"WALL:{name}")
    for name, words in _MEASURE.items():
        add(words, f"MEASURE:{name}")
    add(IGNORE, "IGNORE:x")
    # compounds: one word, several tags
    for word, tags in {
        "lvef": "ANAT:LV|ASPECT:func",
        "rvef": "ANAT:RV|ASPECT:func",
        "lvedv": "ANAT:LV|ASPECT:size",
        "rvedv": "ANAT:RV|ASPECT:size",
        "lvedvi": "ANAT:LV|ASPECT:size",
        "rvedvi": "ANAT:RV|ASPECT:size",
        "lvesv": "ANAT:LV",
        "rvesv": "ANAT:RV",
        "lvh": "ANAT:LV",
        "left ventricular hypertrophy": "ANAT:LV",
        "lv mass": "ANAT:LV",
        "lv mass index": "ANAT:LV",
        "lvmi": "ANAT:LV",
        "asymmetric septal hypertrophy": "ANAT:SEPTUM",
        "ash": "ANAT:SEPTUM",
        "interventricular septum": "WALL:septal",
        "septum": "WALL:septal",
        "septal": "WALL:septal",
        "anteroseptum": "WALL:anterior+septal",
        "inferoseptum": "WALL:inferior+septal",
        "basal anteroseptum": "WALL:anterior+septal",
        "lv non-compaction": "ANAT:LV",
        "rv insertion points": "ANAT:OTHER",
        "rv insertion point": "ANAT:OTHER",
        "right ventricular insertion points": "ANAT:OTHER",
        "large": "ADV:severe",
        "small": "ADV:mild",
    }.items():
        for tag in tags.split("|"):
            out.append((word, tag))
    return out


def lexicon() -> dict[str, str]:
    """phrase (lower case) -> tags joined by ``|``."""
    merged: dict[str, list[str]] = {}
    for phrase, tag in _entries():
        tags = merged.setdefault(phrase.lower(), [])
        if tag not in tags:
            tags.append(tag)
    return {p: "|".join(t) for p, t in merged.items()}


# Units a number may carry, as the token sequence reads in lower case without spaces.
UNITS = {
    "%": "%", "percent": "%", "percentage": "%", "pc": "%", "percent.": "%", "percents": "%",
    "ml": "ml", "mls": "ml", "cc": "ml", "millilitres": "ml", "milliliters": "ml", "mL": "ml",
    "ml/m2": "ml/m2", "ml/m²": "ml/m2", "mls/m2": "ml/m2", "mls/m²": "ml/m2", "ml/m^2": "ml/m2", "mlperm2": "ml/m2",
    "mlperm²": "ml/m2", "mlm-2": "ml/m2", "ml/bsa": "ml/m2", "ml/sqm": "ml/m2", "ml/m2bsa": "ml/m2",
    "mlpersquaremetre": "ml/m2", "mlpersquaremeter": "ml/m2",
    "g": "g", "gm": "g", "grams": "g", "gram": "g", "gr": "g",
    "g/m2": "g/m2", "g/m²": "g/m2", "gm/m2": "g/m2", "g/m^2": "g/m2", "gperm2": "g/m2", "gm-2": "g/m2",
    "mm": "mm", "millimetres": "mm", "millimeters": "mm", "millimetre": "mm", "millimeter": "mm",
    "cm": "cm", "centimetres": "cm", "centimeters": "cm",
}
PERCENT_WORDS = {"per cent": "%"}

COMPARATORS = {
    "<": "<", "<=": "<", "≤": "<", "less than": "<", "below": "<", "under": "<", "lower than": "<", "at most": "<",
    "up to": "max", "measuring up to": "max", "no more than": "<", "not more than": "<", "smaller than": "<",
    "beneath": "<", "lt": "<",
    ">": ">", ">=": ">", "≥": ">", "greater than": ">", "more than": ">", "above": ">", "over": ">",
    "higher than": ">", "at least": ">", "exceeding": ">", "no less than": ">", "gt": ">", "in excess of": ">",
    "~": "~", "around": "~", "about": "~", "approximately": "~", "approx": "~", "approx.": "~", "circa": "~",
    "c.": "~", "roughly": "~", "near": "~", "close to": "~", "nearly": "~", "almost": "~", "estimated": "~",
    "estimated at": "~", "visually estimated": "~", "of about": "~", "of around": "~", "ca": "~", "ca.": "~",
}
# Words before a number that make it no finding of this study (reference ranges, earlier studies).
NOT_THIS_STUDY = {"previously", "previous", "prior", "from", "ref", "reference", "range", "nr", "baseline", "earlier",
                  "before", "cut-off", "cutoff", "threshold", "upper", "lower", "limit", "normal:", "normals"}
