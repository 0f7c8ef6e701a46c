"""Reading labels from the phantom's ground truth (evaluation only; training never sees it).

Per study UID a dict. Diagnoses come from ``conditions``, a semicolon-separated list (an empty list means
``normal``). A finding is positive when its key holds a true value (``True``, 1, "yes", "true", "present") or when
it is named in a semicolon-separated ``findings`` list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TRUE = {"1", "true", "yes", "y", "present", "positive"}


def split_list(value: Any) -> set[str]:
    """``"a; b"`` / ``["a", "b"]`` / None -> ``{"a", "b"}``."""
    if value is None:
        return set()
    items = value.split(";") if isinstance(value, str) else value
    return {str(item).strip() for item in items if str(item).strip()}


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) and not (isinstance(value, float) and np.isnan(value))


def has_finding(truth: Mapping[str, Any], finding: str) -> bool:
    return _truthy(truth.get(finding)) or finding in split_list(truth.get("findings"))


def has_diagnosis(truth: Mapping[str, Any], diagnosis: str) -> bool:
    conditions = split_list(truth.get("conditions"))
    return diagnosis in conditions or (diagnosis == "normal" and not conditions)


def label_matrix(
    truths: Sequence[Mapping[str, Any]], names: Sequence[str], kind: str
) -> dict[str, np.ndarray]:
    """Per name a boolean array over ``truths``; ``kind`` is ``"finding"`` or ``"diagnosis"``."""
    check = has_finding if kind == "finding" else has_diagnosis
    return {name: np.array([check(t, name) for t in truths], dtype=bool) for name in names}


def load_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Ground truth per study UID from a JSON object/list or a CSV with a ``study_uid`` column."""
    path = Path(path)
    if path.suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return {row["study_uid"]: dict(row) for row in frame.to_dict("records")}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {row["study_uid"]: row for row in data}
