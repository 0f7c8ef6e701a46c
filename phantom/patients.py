"""Fake but real-looking patients: names, MRNs, birth dates, body size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

SURNAMES = [
    "MUELLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "MEYER",
    "WAGNER",
    "BECKER",
    "HOFFMANN",
    "KOCH",
    "SMITH",
    "JONES",
    "TAYLOR",
    "BROWN",
    "WILLIAMS",
    "WILSON",
    "DAVIES",
    "EVANS",
    "THOMAS",
    "ROBERTS",
    "GARCIA",
    "MARTINEZ",
    "LOPEZ",
    "NGUYEN",
    "TRAN",
    "KIM",
    "PARK",
    "CHEN",
    "WANG",
    "PATEL",
    "SINGH",
    "KOWALSKI",
    "NOWAK",
    "ROSSI",
    "RUSSO",
    "DUBOIS",
    "MOREAU",
    "JANSSEN",
    "DE VRIES",
    "OKAFOR",
    "HANSEN",
    "O'NEILL",
    "MACDONALD",
    "ANDERSSON",
    "YILMAZ",
    "KAYA",
    "IVANOV",
    "SILVA",
    "SANTOS",
    "COHEN",
]
GIVEN_F = [
    "ANNA",
    "MARIA",
    "SOPHIE",
    "LAURA",
    "EMMA",
    "JULIA",
    "SARAH",
    "HANNAH",
    "CLAIRE",
    "LINDA",
    "SUSAN",
    "FATIMA",
    "AYSE",
    "MEI",
    "PRIYA",
    "OLGA",
    "ELENA",
    "INGRID",
    "GRACE",
    "CHLOE",
    "MARGARET",
    "URSULA",
]
GIVEN_M = [
    "THOMAS",
    "MICHAEL",
    "PETER",
    "ANDREAS",
    "JAN",
    "JOHN",
    "DAVID",
    "JAMES",
    "ROBERT",
    "MARK",
    "PAUL",
    "AHMED",
    "MEHMET",
    "WEI",
    "RAJ",
    "IVAN",
    "CARLOS",
    "LUCA",
    "PIERRE",
    "KLAUS",
    "HANS",
    "GEORGE",
]

ARCHIVE_START = dt.date(2015, 1, 5)
ARCHIVE_DAYS = 3500  # studies fall between ARCHIVE_START and about 9.5 years later


@dataclass(frozen=True)
class Patient:
    patient_id: str  # MRN-like, 8 digits
    family: str
    given: str
    sex: str  # "M" or "F"
    birth_date: dt.date
    height_cm: float
    weight_kg: float

    @property
    def dicom_name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def bsa(self) -> float:
        """Body surface area in m², Mosteller formula."""
        return float(np.sqrt(self.height_cm * self.weight_kg / 3600.0))

    def age_at(self, day: dt.date) -> int:
        return day.year - self.birth_date.year - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


def make_patient(rng: np.random.Generator, age_range: tuple[int, int], first_study: dt.date) -> Patient:
    """Draw one patient whose age at ``first_study`` lies in ``age_range``."""
    sex = "M" if rng.random() < 0.55 else "F"
    given = str(rng.choice(GIVEN_M if sex == "M" else GIVEN_F))
    family = str(rng.choice(SURNAMES))
    age = int(rng.integers(age_range[0], age_range[1] + 1))
    birth = first_study - dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    if sex == "M":
        height = float(np.clip(rng.normal(178, 7), 160, 200))
        bmi = float(np.clip(rng.normal(26.5, 3.5), 19, 38))
    else:
        height = float(np.clip(rng.normal(165, 6.5), 148, 185))
        bmi = float(np.clip(rng.normal(25.5, 4.0), 18, 38))
    weight = bmi * (height / 100.0) ** 2
    mrn = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
    return Patient(mrn, family, given, sex, birth, round(height, 0), round(weight, 1))


def random_study_date(rng: np.random.Generator) -> dt.date:
    return ARCHIVE_START + dt.timedelta(days=int(rng.integers(0, ARCHIVE_DAYS)))
