"""Real stacks for ``cmr eval``: a folder of real DICOM ingested into a throwaway catalog and clip cache.

The evaluation (``cmrclip.train``) may not import the indexer, so the command line ingests and hands it clip
files (``cmrclip.train.realdata.RealStacks``). Nothing is written to the real folder or to the product's catalog.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cmrclip.train.realdata import RealStacks

# ../shared/realdata beside the repository (four Sunnybrook heart-failure SAX stacks), when it is there.
DEFAULT_REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@contextmanager
def real_stacks(
    root: Path | None, *, checkpoint_preprocess: str | None = None, source: str | None = None
) -> Iterator[RealStacks]:
    """Ingest ``root`` (default ``DEFAULT_REALDATA``) into a temporary catalog; its studies' clips while open.

    A missing default folder gives no stacks and a note (the report skips the section with it). Studies that fail
    ingest are named in the notes; so is a checkpoint trained on clips of another preprocessing version.
    """
    from sqlalchemy import select

    from catalog.db import session_scope
    from catalog.models import IngestError, Series, Study
    from indexer.clips.preprocess import PREPROCESS_VERSION
    from indexer.pipeline import ingest_folder
    from migrations.apply import upgrade

    default = root is None
    root = Path(root or DEFAULT_REALDATA)
    label = source or ("shared/realdata" if default else str(root))
    if not root.is_dir():
        yield RealStacks(label, notes=[f"skipped: no folder {root}"])
        return
    with tempfile.TemporaryDirectory(prefix="cmr-eval-realdata-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'catalog.sqlite'}"
        upgrade(url)
        ingest_folder(url, root, Path(tmp) / "clips", workers=1, progress=False)
        stacks: dict[str, Path] = {}
        notes: list[str] = []
        with session_scope(url) as session:
            for study in session.scalars(select(Study).order_by(Study.id)):
                folders = [Path(se.frames[0][0]).parent for se in session.scalars(
                    select(Series).where(Series.study_id == study.id)) if se.frames]
                where = _relative(Path(os.path.commonpath(folders)), root) if folders else study.study_uid
                if study.clip_path and Path(study.clip_path).is_file():
                    stacks[where] = Path(study.clip_path)
                else:
                    reasons = session.scalars(
                        select(IngestError.reason).where(IngestError.study_uid == study.study_uid)
                    ).all()
                    notes.append(f"{where} not placed ({study.state}): {'; '.join(reasons) or 'no clip'}")
        if not stacks and not notes:
            notes.append(f"no study found in {root}")
        if checkpoint_preprocess and checkpoint_preprocess != PREPROCESS_VERSION:
            notes.append(f"the checkpoint was trained on {checkpoint_preprocess} clips; these are {PREPROCESS_VERSION}")
        yield RealStacks(label, dict(sorted(_short_names(stacks).items())), notes)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _short_names(stacks: dict[str, Path]) -> dict[str, Path]:
    """Drop the folders all stacks share (``sunnybrook/``): the table names each by what tells it apart."""
    if len(stacks) < 2:
        return stacks
    parts = [Path(name).parts for name in stacks]
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return {str(Path(*Path(name).parts[shared:])): path for name, path in stacks.items()}
