"""Kill-and-resume of ``cmr index`` (issue 12): kill -9 at a random point, rerun, same end state, nothing left over.

One small catalog with clips and a tiny checkpoint is built once (``tests.fixtures_engine``); each case works on a
copy whose vectors, builds and index files are wiped, so ``cmr index`` has everything to do. The reference is an
uninterrupted run on another such copy. Per seed, ``cmr index`` runs as its own process (one clip-decoding worker,
one study per batch, so there are child processes and many commit points) and is killed with SIGKILL when the
catalog holds a seeded number of vectors, or a seeded moment after the last vector (during the FAISS builds). Then:

- no process of the killed run is left: none of its descendants, none with this copy's data folder in its
  environment;
- a rerun (``run_index``, what the command calls, in this process) finishes, embeds only what was missing, and
  ends with the reference's vector ids per kind (and the same vectors), and an active build per kind holding
  exactly those ids, its file on disk.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from tests.fixtures_engine import EngineData, build_engine_data

ROOT = Path(__file__).resolve().parents[2]
N_STUDIES = 8
SEEDS = (1, 2)  # seed 1 kills during the video embedding, seed 2 during the index builds


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> EngineData:
    return build_engine_data(tmp_path_factory.mktemp("resume-base"), n_studies=N_STUDIES)


def _fresh_copy(base: EngineData, root: Path) -> tuple[Path, str]:
    """A copy of the base data folder with no vectors, no builds and no index files."""
    data = root / "data"
    shutil.copytree(base.data_dir, data)
    shutil.rmtree(data / "index", ignore_errors=True)
    db = data / "catalog.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM index_builds")
        conn.execute("DELETE FROM study_vectors")
    return data, f"sqlite:///{db}"


def _env(data: Path, url: str) -> dict[str, str]:
    return {**os.environ, "CMR_DATA_DIR": str(data), "CMR_DATABASE_URL": url, "CMR_CHECKPOINT": "",
            "CMR_WORKERS": "1", "CMR_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1"}


def _index_cmd() -> list[str]:
    return [sys.executable, "-m", "cmr", "index", "--batch-size", "1"]


def _end_state(url: str) -> dict[str, dict]:
    """Per kind: the stored vectors (id -> vector) and the active build (ids, vector count, file)."""
    from sqlalchemy import text

    from catalog.builds import active_builds
    from catalog.db import get_engine, session_scope
    from catalog.vectors import vectors_of

    out: dict[str, dict] = {}
    with session_scope(url) as session:
        builds = active_builds(session)
        hashes = set(session.scalars(text("SELECT DISTINCT checkpoint_hash FROM study_vectors")))
        assert len(hashes) == 1, hashes
        (checkpoint_hash,) = hashes
        for kind in ("video", "report"):
            ids, vectors = vectors_of(session, checkpoint_hash, kind)
            build = builds.get(kind)
            out[kind] = {"ids": ids.tolist(), "vectors": vectors,
                         "build": None if build is None else
                         (sorted(build.study_ids), build.n_vectors, build.path, build.checkpoint_hash)}
    get_engine.cache_clear()
    return out


def _count_vectors(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT count(*) FROM study_vectors").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is there; a busy or locked file just means "not yet"
        return -1


def _descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc, no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has finished)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_with(marker: str) -> set[int]:
    """Live processes of this user whose environment holds ``marker`` (this copy's data folder)."""
    found = set()
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes() and _alive(int(entry.name)):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _index(base: EngineData, data: Path, url: str):
    """What ``cmr index`` does with these settings (the rerun and the reference run in this process: the
    CLI's start-up, ~20 s of imports on 2 busy cores, is paid once per killed run only)."""
    from catalog.db import get_engine
    from indexer.index.job import run_index

    run = run_index(url, base.checkpoint, data / "index", batch_size=1, device="cpu", workers=1, progress=False)
    get_engine.cache_clear()
    return run


@pytest.fixture(scope="module")
def reference(base: EngineData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The end state of one uninterrupted ``cmr index`` run."""
    data, url = _fresh_copy(base, tmp_path_factory.mktemp("resume-ref"))
    _index(base, data, url)
    state = _end_state(url)
    assert state["video"]["ids"] and state["report"]["ids"], state
    # the study whose clip file is gone has no video vector, so the run had a failure to resume over too
    assert base.missing_clip_study not in state["video"]["ids"]
    return state


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_then_rerun_ends_as_an_uninterrupted_run(seed: int, base: EngineData, reference: dict,
                                                        tmp_path: Path) -> None:
    rng = random.Random(seed)
    total = len(reference["video"]["ids"]) + len(reference["report"]["ids"])
    # the kill point: after `target` stored vectors, before the last one (a kill during the index builds raced
    # the process's own end on a quiet machine: the builds of a few vectors take milliseconds)
    target = rng.randint(1, total - 1)
    delay = 0.0
    data, url = _fresh_copy(base, tmp_path)
    env = _env(data, url)
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(_index_cmd(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _count_vectors(data / "catalog.sqlite") < target and proc.poll() is None:
            assert time.monotonic() < deadline, "cmr index stored too few vectors in 240 s"
            time.sleep(0.02)
        time.sleep(delay)
        family = _descendants(proc.pid)
        finished_first = proc.poll() is not None
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the poll and the kill (a quiet machine is quick)
            finished_first = True
        proc.wait(timeout=30)
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not finished_first, f"cmr index ended before the kill point ({target} vectors + {delay:.1f} s)"
    assert proc.returncode == -signal.SIGKILL

    deadline = time.monotonic() + 20  # a DataLoader worker notices its parent is gone within ~5 s
    left = {p for p in family if _alive(p)} | _processes_with(str(data))
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = {p for p in family if _alive(p)} | _processes_with(str(data))
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the killed cmr index still running: {sorted(left)} (children {sorted(family)})"

    stored = _count_vectors(data / "catalog.sqlite")
    with sqlite3.connect(data / "catalog.sqlite") as conn:
        video_before = conn.execute("SELECT count(*) FROM study_vectors WHERE kind = 'video'").fetchone()[0]
        builds_before = conn.execute("SELECT count(*) FROM index_builds").fetchone()[0]
    assert stored >= target

    rerun = _index(base, data, url)
    # resumed: only what the killed run had not stored is embedded again
    assert rerun.studies.done == len(reference["video"]["ids"]) - video_before

    state = _end_state(url)
    for kind in ("video", "report"):
        ref, got = reference[kind], state[kind]
        assert got["ids"] == ref["ids"], kind
        np.testing.assert_allclose(got["vectors"], ref["vectors"], atol=1e-5, err_msg=kind)
        assert got["build"] is not None, f"no active {kind} build"
        held, n_vectors, path, checkpoint_hash = got["build"]
        assert held == ref["ids"] and n_vectors == len(ref["ids"]), kind
        assert checkpoint_hash == ref["build"][3]
        assert Path(path).is_file() and Path(path).parent == data / "index", path
        assert faiss.read_index(path).ntotal == len(ref["ids"])
    print(f"seed {seed}: killed after {stored}/{total} vectors (+{delay:.1f} s, {builds_before} builds, "
          f"{len(family)} child processes), rerun embedded the rest")
