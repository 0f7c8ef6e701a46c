"""A real, small search setup for tests: migrated SQLite catalog, clip files, tiny checkpoint, built indexes.

``build_engine_data(root)`` writes everything under ``root`` (``root/data`` is the data dir) and returns what
tests need to point settings at it (``CMR_DATA_DIR``, ``CMR_DATABASE_URL``) and to assert on identifiers.
The model is untrained (random video tower, random-init text tower), so rankings are arbitrary but stable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A tiny video tower: fast on 2 cores. The text tower is the bundled MiniLM architecture, randomly initialised.
TINY = {"embed_dim": 32, "video": {"width": 32, "cnn": {"channels": [8, 16, 32]}, "fusion": {"heads": 2}}}
PREPROCESS_VERSION = "test-v1"

IMPRESSIONS = (
    "Asymmetric septal hypertrophy (septum 19 mm) with patchy mid-wall LGE. Appearances of HCM.",
    "Dilated left ventricle with severely reduced systolic function (LVEF 28%). No LGE.",
    "Normal left ventricular size and function. No late gadolinium enhancement.",
    "Subendocardial LGE in the LAD territory, consistent with prior infarction. Mildly reduced function.",
    "Small pericardial effusion. Normal biventricular function.",
    "Mildly dilated left ventricle, preserved ejection fraction. No LGE.",
)


@dataclass(frozen=True)
class EngineData:
    data_dir: Path
    url: str
    checkpoint: Path
    checkpoint_hash: str
    study_ids: list[int]
    # identifiers planted in the catalog: researcher pages must show none of them
    identifiers: list[str]
    # study whose clip file was deleted after indexing (searchable, but no cines)
    missing_clip_study: int
    # study without a report
    no_report_study: int

    def env(self) -> dict[str, str]:
        return {"CMR_DATA_DIR": str(self.data_dir), "CMR_DATABASE_URL": self.url, "CMR_CHECKPOINT": "",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _clips(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    from tests.cmrclip.synthetic import make_study

    labels = {"dilated": i % 3 == 1, "reduced_function": i % 3 == 1, "lge": i % 2 == 0}
    views = ("sax", "2ch", "4ch", "lge_sax") if i % 4 == 3 else ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax")
    return make_study(rng, labels, views).views


def build_engine_data(root: Path, n_studies: int = 12, seed: int = 0) -> EngineData:
    """Write the catalog, clips, checkpoint and indexes under ``root``; takes ~20 s on 2 cores."""
    import torch

    from catalog.db import get_engine, session_scope
    from catalog.models import IngestError, Report, Series, Study, StudyState
    from cmrclip.checkpoint import save_checkpoint
    from cmrclip.clips import clip_path, save_clip
    from cmrclip.factory import create_model
    from indexer.index.job import run_index
    from migrations.apply import upgrade

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data_dir = Path(root) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(data_dir / 'catalog.sqlite').resolve()}"
    upgrade(url)

    identifiers: list[str] = []
    ids: list[int] = []
    with session_scope(url) as session:
        for i in range(n_studies):
            uid = f"1.2.826.0.1.3680043.99.{1000 + i}"
            views = _clips(rng, i)
            path = clip_path(data_dir / "clips", uid, PREPROCESS_VERSION)
            save_clip(path, views)
            name, pid, acc = f"TESTPATIENT^NUMBER{i:02d}", f"PID{9000 + i}", f"ACCX{7000 + i}"
            identifiers += [name.replace("^", " "), pid, acc, uid]
            study = Study(
                study_uid=uid, accession=acc, patient_id=pid, patient_name=name,
                patient_birth_date=dt.date(1950 + i * 2, 1 + i % 12, 1 + i), patient_key=f"pk{i:04d}abcd",
                patient_age=73 - i * 2 - (1 if i % 5 == 0 else 0) + (20 if i == 0 else 0),
                patient_sex="F" if i % 2 else "M", study_date=dt.date(2019 + i % 5, 1 + i % 12, 10),
                study_description="CMR heart", institution=("Site A Hospital", "Site B Clinic")[i % 2],
                manufacturer=("SIEMENS", "GE MEDICAL SYSTEMS")[i % 2], scanner_model=("Aera", "Signa")[i % 2],
                field_strength=(1.5, 3.0)[i % 2], views=sorted(views), state=StudyState.PREPROCESSED,
                preprocess_version=PREPROCESS_VERSION, clip_path=str(path), fingerprint=f"fp{i}",
            )
            study.series = [
                Series(series_uid=f"{uid}.{n}", series_number=n, description=f"{v} cine", view=v,
                       n_slices=3 if v in ("sax", "lge_sax") else 1, n_phases=16 if "lge" not in v else 1)
                for n, v in enumerate(sorted(views), start=1)
            ]
            session.add(study)
            session.flush()
            ids.append(study.id)
            if i != n_studies - 1:
                impression = IMPRESSIONS[i % len(IMPRESSIONS)]
                session.add(Report(accession=acc, study_id=study.id, report_date=study.study_date,
                                   impression=impression, findings="Cine imaging in standard views.",
                                   text=f"CLINICAL: chest pain.\nFINDINGS: Cine imaging in standard views.\n"
                                        f"IMPRESSION: {impression}"))
        session.add(IngestError(path="/archive/bad/IM0001.dcm", stage="scan", kind="not_dicom",
                                reason="file is not DICOM"))
        session.add(IngestError(path="/archive/p7/series3", study_uid="1.2.3.999", stage="preprocess",
                                kind="too_few_frames", reason="cine has 3 frames, needs 8"))

    model = create_model("cpu-small", pretrained_text=False, **TINY).eval()
    checkpoint = data_dir / "checkpoints" / "tiny.pt"
    meta = save_checkpoint(model, checkpoint, PREPROCESS_VERSION)
    (checkpoint.parent / "ACTIVE").write_text(str(checkpoint))  # as `cmr train` marks it
    run_index(url, checkpoint, data_dir / "index", batch_size=8, device="cpu", workers=0, progress=False)
    # a study that was indexed, then lost its clip file
    missing = ids[1]
    with session_scope(url) as session:
        Path(session.get(Study, missing).clip_path).unlink()
    get_engine.cache_clear()
    return EngineData(data_dir, url, checkpoint, meta.hash, ids, identifiers, missing, ids[-1])
