"""Tissue labels shared by the anatomy and the renderer."""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    AIR = 0
    SUBCUT_FAT = 1
    MUSCLE = 2
    LUNG = 3
    LIVER = 4
    ABDOMEN = 5
    BONE = 6
    CSF = 7
    MEDIASTINUM = 8  # mediastinal fat and connective tissue
    VESSEL_BLOOD = 9  # descending aorta
    LV_BLOOD = 10
    RV_BLOOD = 11
    ATRIAL_BLOOD = 12
    AORTIC_BLOOD = 13
    MYOCARDIUM = 14
    SCAR = 15
    EPI_FAT = 16
    PERICARDIUM = 17
    EFFUSION = 18
    VESSEL_WALL = 19
    STOMACH = 20  # gas, food and fluid


N_TISSUES = len(Tissue)
