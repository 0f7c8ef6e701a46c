"""The Ray engine on a local Ray instance: same vectors and catalog state as the local runner, partition faults
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

from catalog import search_queries  # noqa: E402
from catalog.db import session_scope  # noqa: E402
from catalog.migrate import upgrade  # noqa: E402
from catalog.models import IndexBuild, IngestError, StudyVector  # noqa: E402
from indexer.embed import embed_studies  # noqa: E402
from indexer.index_job import run_index  # noqa: E402
from indexer.ray_engine import RayOptions, embed_with_ray, read_clip_partition, run_index_ray  # noqa: E402
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
        out = {kind: search_queries.vectors_of(session, checkpoint_hash, kind) for kind in ("video", "report")}
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
    """The default clip reader, raising in one partition after its first batch (first attempt only, unless
    ``always``). The marker file is how a retry, in another worker process, knows it is not the first attempt."""

    marker_dir: str
    fail_partition: int
    always: bool = False

    def __call__(self, partition_id: int, items, batch_size: int):
        for samples in read_clip_partition(partition_id, items, batch_size):
            yield samples
            if partition_id == self.fail_partition:
                marker = Path(self.marker_dir) / f"failed-{partition_id}"
                if self.always or not marker.exists():
                    marker.touch()
                    raise RuntimeError(f"injected fault in partition {partition_id}")


def _options(**kwargs) -> RayOptions:
    return RayOptions(**{"partitions": 3, "concurrency": 1, "batch_size": 2, "progress": False, **kwargs})


def test_ray_path_matches_local_path_despite_a_failed_partition(local_ray, seed_catalog, tmp_path):
    """Same vectors, errors and index builds as the local runner, although partition 1 raises on its first attempt
    after emitting a batch: the retry loses nothing and doubles nothing."""
    checkpoint = tiny_checkpoints()[0]
    checkpoint_hash = tiny_model(0)[1].hash
    local_url = _copy(seed_catalog, tmp_path / "local")
    ray_url = _copy(seed_catalog, tmp_path / "ray")

    local = run_index(local_url, checkpoint, tmp_path / "local" / "index", batch_size=4, device="cpu", workers=0,
                      progress=False)
    flaky = FlakyReader(str(tmp_path), fail_partition=1)
    remote = run_index_ray(ray_url, checkpoint, tmp_path / "ray" / "index", options=_options(readers={"video": flaky}),
                           device="cpu")

    assert (tmp_path / "failed-1").exists(), "the fault was not injected"
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
    embed_studies(ref_url, tiny_model(0)[0], checkpoint_hash, batch_size=4, workers=0, progress=False)

    # partition 0 fails on every attempt: the job gives up, the other partitions are stored
    doomed = FlakyReader(str(tmp_path), fail_partition=0, always=True)
    once = _options(readers={"video": doomed}, task_retries=0, attempts=1)
    with pytest.raises(RuntimeError, match="partitions could not be embedded"):
        embed_with_ray(url, checkpoint, "video", options=once, device="cpu")
    with session_scope(url) as session:
        stored = set(search_queries.vector_ids(session, checkpoint_hash, "video").tolist())
        pending = search_queries.studies_to_embed(session, checkpoint_hash)
    assert stored and pending, "expected some partitions written and some not"

    # the next run embeds only what is missing
    times = embed_with_ray(url, checkpoint, "video", options=_options(), device="cpu")
    assert times.done + len(times.failed) == len(pending)
    _assert_same_vectors(_state(ref_url, checkpoint_hash), _state(url, checkpoint_hash))


def test_readers_are_cpu_tasks_separate_from_the_model_actors(local_ray):
    """Ray Data fuses stages with compatible settings; decoding fused into the actors would run on their CPUs."""
    import contextlib
    import io

    from indexer.ray_engine import _dataset, _Partition

    parts = {0: _Partition([(1, "/a.npz")]), 1: _Partition([(2, "/b.npz")])}
    ds = _dataset(parts, "video", ray.put(b""), _options(), "cpu")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ds.explain()
    physical = out.getvalue().split("Physical Plan (Optimized)")[-1]
    assert "TaskPoolMapOperator[FlatMap(_read_rows)]" in physical
    assert "ActorPoolMapOperator[MapBatches(ModelActor)]" in physical
