"""Site presets: scanner, protocol naming and acquisition settings that change together per hospital.

Everything here is data (the ``appearance`` keys are ``phantom.appearance.SITE_LOOK``'s). A preset is chosen per
patient; values given as ``[lo, hi]`` are drawn uniformly per study, lists of strings are drawn from per series.
Series descriptions deliberately vary inside a site (suffixes, numbering, case) and some are uninformative, so an
indexer has to look at geometry too.
"""

from __future__ import annotations

from typing import Any

# Transfer syntax keys used by dicom_writer: "explicit" (Explicit VR Little Endian), "implicit"
# (Implicit VR Little Endian), "rle" (RLE Lossless), "j2k" (JPEG 2000 Lossless).

SITES: dict[str, dict[str, Any]] = {
    "site_a": {
        "institution": "St. Elisabeth Klinikum",
        "appearance": {"myocardium": 1.0, "kspace_rows": (0.6, 0.95), "flow_void_prob": 0.35, "banding_prob": 0.25,
                       "background_mask_prob": 0.25},
        "station": "AWP45612",
        "manufacturer": "SIEMENS",
        "models": ["Avanto", "Aera", "Avanto_fit"],
        "software": ["syngo MR B17", "syngo MR E11", "syngo MR XA20"],
        "field_strength": 1.5,
        "accession_format": "A{:07d}",
        "file_name": "IM-{series:04d}-{instance:04d}.dcm",
        "series_number_step": 1,
        "transfer_syntax": {"cine": "explicit", "single": "explicit"},
        "noise": [0.035, 0.05],  # Rician sigma relative to blood signal
        "signal_scale": [900, 1300],  # stored value of fully relaxed blood
        "bias": [0.1, 0.3],  # strength of the coil sensitivity field left after the scanner's normalisation
        "pixel_spacing": [1.4, 1.9],
        "columns": [160, 176, 192],
        "row_fraction": [0.75, 0.8125, 0.875],  # rectangular FOV: rows = fraction * columns
        "slice_thickness": [6.0, 8.0],
        "slice_gap": [1.5, 2.5],
        "phases": [20, 25],
        "sax_split_prob": 0.3,  # SAX stack stored as one series per slice (old Siemens habit)
        "lge_lax_mode": "separate",  # each LGE long-axis plane its own series
        "study_descriptions": ["CARDIAC MRI", "Cardiac^CMR_Function_LGE", "MRT HERZ", "Kardio MRT"],
        "names": {
            "sax": ["cine_sax", "cine_sax_RT", "CINE SAX", "cine_sa_stack", "tf2d_sax"],
            "4ch": ["trufi_4ch", "cine_4ch", "trufi_4ch_RT", "CINE 4CH"],
            "3ch": ["trufi_3ch", "cine_3ch", "trufi_lvot", "cine_3ch_RT"],
            "2ch": ["trufi_2ch", "cine_2ch", "trufi_2ch_RT", "CINE 2K"],
            "lge_sax": ["PSIR SAX", "PSIR_sax_MAG", "de_PSIR_sa", "LGE_SAX"],
            "lge_lax": ["PSIR_4ch", "PSIR_2ch", "PSIR_3ch", "PSIR LAX", "de_psir_lax"],
            "localizer": ["localizer", "localizer_haste", "AAHScout", "scout_3pl"],
            "t1map": ["T1MAP_MOLLI", "MOLLI_5(3)3_T1", "T1 map pre", "MOLLI post"],
        },
        "vague_names": ["cine_ao", "SSFP", "tf2d", "cine_retro", "repeat", "BH cine"],
        "sequence_names": {"cine": "*tfi2d1_{ph}", "lge": "*tfl2d1r", "t1map": "*tfi2d1", "localizer": "*fl2d1"},
        "referring": ["DR^HOFFMANN^KLAUS", "WAGNER^SUSANNE", "DR^BECKER", ""],
    },
    "site_b": {
        "institution": "Royal Brookfield Hospital",
        "appearance": {"myocardium": 0.85, "kspace_rows": (0.7, 1.0), "flow_void_prob": 0.6, "banding_prob": 0.6,
                       "background_mask_prob": 0.45},
        "station": "MR3T-CARDIO",
        "manufacturer": "Philips Medical Systems",
        "models": ["Ingenia", "Achieva", "Ingenia Elition X"],
        "software": ["5.3.1", "5.6.1", "5.7.1"],
        "field_strength": 3.0,
        "accession_format": "RB{:08d}",
        "file_name": "IM_{instance:05d}",
        "series_number_step": 100,
        "transfer_syntax": {"cine": "rle", "single": "rle"},
        "noise": [0.022, 0.035],
        "signal_scale": [1400, 2000],
        "bias": [0.2, 0.45],
        "pixel_spacing": [1.25, 1.75],
        "columns": [160, 176, 192],
        "row_fraction": [0.8, 0.875, 1.0],
        "slice_thickness": [8.0, 8.0],
        "slice_gap": [0.0, 2.0],
        "phases": [24, 28],
        "sax_split_prob": 0.0,
        "lge_lax_mode": "combined",  # one series holding all LGE long-axis planes
        "study_descriptions": ["MR Heart", "CARDIAC MRI WITH CONTRAST", "MRI HEART FUNCTION AND VIABILITY"],
        "names": {
            "sax": ["SA_CINE", "sBTFE_SA", "SA_CINE_BH", "CINE_SA MB"],
            "4ch": ["bTFE_4ch", "4CH_CINE", "sBTFE_4CH", "bTFE_4ch_2"],
            "3ch": ["LVOT_bTFE", "3CH_CINE", "bTFE_3ch", "LVOT"],
            "2ch": ["bTFE_2CH", "2CH_CINE", "sBTFE_2ch", "VLA_bTFE"],
            "lge_sax": ["DE_SAX", "PSIR_SA", "LGE_SA_3D", "DE_SA_PSIR"],
            "lge_lax": ["DE_LAX", "PSIR_LAX", "DE_LAX_multi"],
            "localizer": ["Survey", "SURVEY_BH", "Survey_cardiac"],
            "t1map": ["T1map", "T1_MOLLI_SA", "SHMOLLI T1 map", "T1map_post"],
        },
        "vague_names": ["SSFP", "cine_ao", "B-TFE", "cine", "sBTFE_BH"],
        "sequence_names": {"cine": "B-TFE", "lge": "T1TFE", "t1map": "MOLLI", "localizer": "T1TFE"},
        "referring": ["SMITH^JOHN^^DR", "PATEL^ANITA", "O'BRIEN^MICHAEL", ""],
    },
    "site_c": {
        "institution": "Lakeside University Medical Center",
        "appearance": {"myocardium": 1.05, "kspace_rows": (0.55, 0.85), "flow_void_prob": 0.3, "banding_prob": 0.2,
                       "background_mask_prob": 0.7},
        "station": "GEMR15",
        "manufacturer": "GE MEDICAL SYSTEMS",
        "models": ["SIGNA Artist", "Optima MR450w", "SIGNA Explorer"],
        "software": ["27\\LX\\MR Software release:RX27.0_R04", "29\\LX\\MR Software release:RX29.1_R02"],
        "field_strength": 1.5,
        "accession_format": "{:09d}",
        "file_name": "Image{instance:05d}",
        "series_number_step": 1,
        "transfer_syntax": {"cine": "implicit", "single": "j2k"},
        "noise": [0.045, 0.065],
        "signal_scale": [600, 1000],
        "bias": [0.1, 0.25],
        "pixel_spacing": [1.5, 2.0],
        "columns": [160, 192],
        "row_fraction": [0.75, 1.0],
        "slice_thickness": [8.0, 10.0],
        "slice_gap": [0.0, 2.0],
        "phases": [20, 20],
        "sax_split_prob": 0.0,
        "lge_lax_mode": "separate",
        "study_descriptions": ["MR CARDIAC MORPH/FUNCTION W/WO", "CARDIAC MRI", "MRI HEART W CONTRAST"],
        "names": {
            "sax": ["FIESTA SAX", "FIESTA CINE SA", "SAX FIESTA 12/12", "Cine SA"],
            "4ch": ["FIESTA 4CH", "4 CH FIESTA", "FIESTA 4CH SINGLE"],
            "3ch": ["FIESTA 3CH", "FIESTA LVOT", "3 CH FIESTA"],
            "2ch": ["FIESTA 2CH", "2 CH FIESTA", "FIESTA VLA"],
            "lge_sax": ["MDE SAX", "MDE SA", "PSMDE SAX", "MDE SHORT AXIS"],
            "lge_lax": ["MDE 4CH", "MDE 2CH", "MDE LAX", "PSMDE 3CH"],
            "localizer": ["3-Plane Loc", "3Plane Loc SSFSE", "LOC"],
            "t1map": ["T1 MAP SMART1", "T1MAP", "SMART1MAP"],
        },
        "vague_names": ["FIESTA", "Cine", "cine_ao", "FIESTA CINE"],
        "sequence_names": {"cine": "fiestac", "lge": "fgre3d", "t1map": "smart1map", "localizer": "ssfse"},
        "referring": ["JOHNSON^MARK", "NGUYEN^LINDA^MD", "GARCIA^ROBERTO", ""],
    },
}

# Probability that a series gets a vague description ("SSFP", "series 7") instead of its site name.
VAGUE_NAME_PROB = 0.1
# Views and how often a study lacks them (sax and 4ch rarely, the rest more often).
VIEW_MISSING_PROB = {"sax": 0.02, "4ch": 0.04, "2ch": 0.15, "3ch": 0.18, "lge_sax": 0.12, "lge_lax": 0.18}
# Probability of extra series (localizer, T1 map) that an indexer should classify as "other".
EXTRA_SERIES_PROB = 0.3


def site_names() -> list[str]:
    """All preset names, in a stable order."""
    return sorted(SITES)
