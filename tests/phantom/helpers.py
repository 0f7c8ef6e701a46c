"""Small readers for the CSV outputs of the phantom."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def fault_paths(root: Path) -> dict[str, str]:
    """Relative path -> fault kind, for every planted fault."""
    return {row["path"]: row["kind"] for row in read_csv(root / "faults.csv")}
