"""The Ray driver on a local Ray instance: same vectors and catalog state as the local driver, partition faults
retried without loss or doubling, and a killed job resumed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the `ray` extra is not installed")

import ray  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from catalog.db import session_scope  # noqa: E402
from catalog.models import IndexBuild, IngestError, StudyVector  # noqa: E402
from catalog.vectors import studies_to_embed, vector_ids, vectors_of
from indexer.index.drivers import EmbedOptions, RayOptions, cluster_plan, embed_pending, embed_with_ray  # noqa: E402
from indexer.index.job import run_index  # noqa: E402
from indexer.index.stages import read_clips  # noqa: E402
from migrations.apply import upgrade  # noqa: E402
from tests.search.builders import StudySpec, add_studies, tiny_checkpoints, tiny_model, write_clip  # noqa: E402

N_STUDIES = 10
BROKEN = 4  # index of the study whose clip file is corrupt
# float16 storage: two float32 vectors that agree to ~1e-6 may still round to neighbouring float16 values
F16_ATOL = 2e-3


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def seed_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite catalog with clips (one corrupt) and reports; tests copy it."""
    root = tmp_path_factory.mktemp("ray-seed")
    url = f"sqlite:///{root / 'catalog.sqlite'}"
    upgrade(url)
    clips = root / "clips"
    specs = []
    for i in range(N_STUDIES):
        uid = f"1.2.3.{i}"
        views = ("sax", "4ch") if i % 2 else ("sax", "2ch", "4ch", "lge_sax")
        path = write_clip(clips, uid, seed=i, views=views)
        if i == BROKEN:
            Path(path).write_bytes(b"not a clip")
        specs.append(StudySpec(uid=uid, views=views, patient=f"p{i}", clip_path=path,
                               impression=f"Finding number {i}." if i % 3 else None))
    add_studies(url, specs)
    return root / "catalog.sqlite"


def _copy(seed: Path, dest: Path) -> str:
    """A copy of the seed catalog (SQLite's backup API: the seed is in WAL mode, a file copy could miss pages)."""
    dest.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(seed)) as src, closing(sqlite3.connect(dest / "catalog.sqlite")) as dst:
        src.backup(dst)
    return f"sqlite:///{dest / 'catalog.sqlite'}"


def _state(url: str, checkpoint_hash: str) -> dict:
    """What an index run leaves in the catalog, comparable across runs."""
    with session_scope(url) as session:
        out = {kind: vectors_of(session, checkpoint_hash, kind) for kind in ("video", "report")}
        per_study = select(StudyVector.study_id, StudyVector.kind, func.count())
        rows = session.execute(per_study.group_by(StudyVector.study_id, StudyVector.kind)).all()
        errors = sorted(session.execute(select(IngestError.study_uid, IngestError.stage, IngestError.kind)).all())
        builds = sorted(
            (b.kind, b.n_vectors, tuple(sorted(b.study_ids)), b.active)
            for b in session.scalars(select(IndexBuild))
        )
    assert all(count == 1 for _, _, count in rows), "a vector was stored twice"
    return {"vectors": out, "errors": errors, "builds": builds}


def _assert_same_vectors(a: dict, b: dict) -> None:
    for kind in ("video", "report"):
        ids_a, vec_a = a["vectors"][kind]
        ids_b, vec_b = b["vectors"][kind]
        np.testing.assert_array_equal(ids_a, ids_b, err_msg=f"{kind}: different studies embedded")
        np.testing.assert_allclose(vec_a, vec_b, atol=F16_ATOL, err_msg=f"{kind}: vectors differ")


@dataclass
class FlakyReader:
    """The clip reader, raising in the partition that holds ``fail_study`` after its first batch (first attempt
    only, unless ``always``). The marker file is how a retry, in another worker process, knows it is not the first
    attempt."""

    marker_dir: str
    fail_study: int
    always: bool = False

    def __call__(self, items, batch_size: int, workers: int):
        for batch in read_clips(items, batch_size, workers):
            yield batch
            if any(sid == self.fail_study for sid, _ in items):
                marker = Path(self.marker_dir) / f"failed-{self.fail_study}"
                if self.always or not marker.exists():
                    marker.touch()
                    raise RuntimeError(f"injected fault in the partition of study {self.fail_study}")


def _options(**kwargs) -> RayOptions:
    return RayOptions(**{"partitions": 3, "concurrency": 1, **kwargs})


def _embed_options(**kwargs) -> EmbedOptions:
    return EmbedOptions(batch_size=2, device="cpu", progress=False, ray=_options(**kwargs))


def _pending_study(url: str, checkpoint_hash: str, position: int) -> int:
    """The study id at ``position`` of the pending list: partition ``position % 3`` holds it."""
    with session_scope(url) as session:
        return studies_to_embed(session, checkpoint_hash)[position][0]


def test_ray_path_matches_local_path_despite_a_failed_partition(local_ray, seed_catalog, tmp_path):
    """Same vectors, errors and index builds as the local runner, although partition 1 raises on its first attempt
    after emitting a batch: the retry loses nothing and doubles nothing."""
    checkpoint = tiny_checkpoints()[0]
    checkpoint_hash = tiny_model(0)[1].hash
    local_url = _copy(seed_catalog, tmp_path / "local")
    ray_url = _copy(seed_catalog, tmp_path / "ray")

    local = run_index(local_url, checkpoint, tmp_path / "local" / "index", batch_size=4, device="cpu", workers=0,
                      progress=False)
    flaky = FlakyReader(str(tmp_path), fail_study=_pending_study(ray_url, checkpoint_hash, 1))
    remote = run_index(ray_url, checkpoint, tmp_path / "ray" / "index", batch_size=2, device="cpu", progress=False,
                       engine="ray", ray=_options(readers={"video": flaky}))

    assert list(tmp_path.glob("failed-*")), "the fault was not injected"
    assert remote.device == "ray (1 CPU actors)"
    assert (remote.studies.done, sorted(remote.studies.failed)) == (local.studies.done, sorted(local.studies.failed))
    assert remote.studies.done == N_STUDIES - 1 and len(remote.studies.failed) == 1
    assert remote.reports.done == local.reports.done > 0
    a, b = _state(local_url, checkpoint_hash), _state(ray_url, checkpoint_hash)
    _assert_same_vectors(a, b)
    assert a["errors"] == b["errors"] and any(stage == "embed" for _, stage, _ in b["errors"])
    assert a["builds"] == b["builds"]


def test_killed_job_resumes_and_skips_written_partitions(local_ray, seed_catalog, tmp_path):
    checkpoint = tiny_checkpoints()[0]
    checkpoint_hash = tiny_model(0)[1].hash
    ref_url = _copy(seed_catalog, tmp_path / "ref")
    url = _copy(seed_catalog, tmp_path / "killed")
    embed_pending(ref_url, tiny_model(0)[0], checkpoint_hash, "video",
                  EmbedOptions(batch_size=4, workers=0, progress=False))

    # partition 0 fails on every attempt: the job gives up, the other partitions are stored
    doomed = FlakyReader(str(tmp_path), fail_study=_pending_study(url, checkpoint_hash, 0), always=True)
    once = _embed_options(readers={"video": doomed}, task_retries=0, attempts=1)
    with pytest.raises(RuntimeError, match="partitions could not be embedded"):
        embed_with_ray(url, checkpoint, ["video"], once)
    with session_scope(url) as session:
        stored = set(vector_ids(session, checkpoint_hash, "video").tolist())
        pending = studies_to_embed(session, checkpoint_hash)
    assert stored and pending, "expected some partitions written and some not"

    # the next run embeds only what is missing
    times = embed_with_ray(url, checkpoint, ["video"], _embed_options()).times["video"]
    assert times.done + len(times.failed) == len(pending)
    _assert_same_vectors(_state(ref_url, checkpoint_hash), _state(url, checkpoint_hash))


def test_an_actor_reserves_a_cpu_per_decoding_worker(local_ray):
    """Actors decode their own partitions: an actor with a decoding worker holds two of the instance's two CPUs."""
    assert cluster_plan(RayOptions(), "cpu") == (2, 0.0, 1.0)
    assert cluster_plan(RayOptions(workers=1), "cpu") == (1, 0.0, 2.0)
