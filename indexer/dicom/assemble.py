"""Group frames into series and order them: slices along the plane normal, phases by trigger time."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from indexer.dicom.headers import FrameHeader


@dataclass
class Problem:
    """Something wrong with one file or series that the scan records and works around."""

    kind: str
    reason: str
    path: str | None


@dataclass
class AssembledSeries:
    series_uid: str
    description: str
    series_number: int | None
    frames: list[FrameHeader]
    grid: list[list[FrameHeader]]  # [slice][phase], slices ordered along the normal, phases by time
    normal: np.ndarray | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return len(self.grid)

    @property
    def n_phases(self) -> int:
        return max((len(row) for row in self.grid), default=0)

    @property
    def has_inversion(self) -> bool:
        return any(f.inversion_time for f in self.frames)


def drop_duplicates(frames: list[FrameHeader]) -> tuple[list[FrameHeader], list[Problem]]:
    """Keep the first file of each SOP instance (by path order); report the rest."""
    seen: dict[tuple[str, int], FrameHeader] = {}
    problems = []
    for f in sorted(frames, key=lambda f: (f.path, f.frame)):
        key = (f.sop_uid, f.frame)
        if key in seen:
            problems.append(Problem("duplicate_instance", f"duplicate SOP instance, same as {seen[key].path}", f.path))
            continue
        seen[key] = f
    return list(seen.values()), problems


def drop_matrix_outliers(frames: list[FrameHeader]) -> tuple[list[FrameHeader], list[Problem]]:
    """Frames whose matrix differs from the series' majority cannot join its array; report them."""
    counts = Counter((f.rows, f.columns) for f in frames)
    majority = counts.most_common(1)[0][0]
    keep, problems = [], []
    for f in frames:
        if (f.rows, f.columns) == majority:
            keep.append(f)
        else:
            problems.append(
                Problem(
                    "matrix_mismatch",
                    f"frame matrix {f.rows}x{f.columns} differs from the series' {majority[0]}x{majority[1]}",
                    f.path,
                )
            )
    return keep, problems


def _series_normal(frames: list[FrameHeader]) -> np.ndarray | None:
    normals = [f.normal for f in frames if f.normal is not None]
    if not normals:
        return None
    n = normals[0]
    return n / np.linalg.norm(n)


def _orientation_key(f: FrameHeader) -> tuple:
    return tuple(np.round(f.orientation, 2)) if f.orientation is not None else ()


def order_grid(frames: list[FrameHeader], normal: np.ndarray | None) -> tuple[list[list[FrameHeader]], list[Problem]]:
    """Order frames into [slice][phase].

    A slice is one plane: frames of the same orientation whose positions along the plane normal agree within
    0.5 mm (in-plane shifts between breath-holds do not split a slice; a series holding several long-axis planes
    gives one slice per plane). Phases are ordered by TriggerTime, or by InstanceNumber when it is missing.
    """
    problems: list[Problem] = []
    keyed = []
    for f in frames:
        n = f.normal if f.normal is not None else normal
        height = float(f.position @ n) if (n is not None and f.position is not None) else 0.0
        keyed.append((_orientation_key(f), height, f))
    keyed.sort(key=lambda item: (item[0], item[1]))
    slices: list[list[FrameHeader]] = []
    last = None
    for key, height, f in keyed:
        if last is None or key != last[0] or height - last[1] > 0.5:
            slices.append([])
        slices[-1].append(f)
        last = (key, height)
    missing_trigger = any(f.trigger_time is None for f in frames)
    if missing_trigger and len(frames) > len(slices):
        problems.append(
            Problem("missing_trigger_time", "TriggerTime missing: phases ordered by InstanceNumber", frames[0].path)
        )
    grid = []
    for row in slices:
        if missing_trigger:
            row.sort(key=lambda f: (f.instance_number or 0, f.path, f.frame))
        else:
            row.sort(key=lambda f: (f.trigger_time, f.instance_number or 0))
        grid.append(row)
    return grid, problems


def assemble_series(frames: list[FrameHeader]) -> AssembledSeries:
    frames, problems = drop_duplicates(frames)
    frames, more = drop_matrix_outliers(frames)
    problems += more
    normal = _series_normal(frames)
    grid, more = order_grid(frames, normal)
    problems += more
    first = frames[0]
    return AssembledSeries(
        series_uid=first.series_uid,
        description=first.series_description,
        series_number=first.series_number,
        frames=frames,
        grid=grid,
        normal=normal,
        problems=problems,
    )


def group_by_study(frames: list[FrameHeader]) -> dict[str, dict[str, list[FrameHeader]]]:
    """study_uid → series_uid → frames."""
    out: dict[str, dict[str, list[FrameHeader]]] = defaultdict(lambda: defaultdict(list))
    for f in frames:
        out[f.study_uid][f.series_uid].append(f)
    return out
