"""Batch embedding into the vector store and FAISS builds: ids, incremental adds, withdrawals, new checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import select

from catalog.db import session_scope
from catalog.models import IndexBuild, IngestError, Study, StudyState
from catalog.vectors import vectors_of
from cmrclip.batch import collate_studies
from cmrclip.clips import load_clip
from indexer.index import policy as index_policy
from indexer.index.builds import update_index
from indexer.index.drivers import EmbedOptions, embed_pending
from indexer.index.faiss_build import build_index
from indexer.index.stages import partition
from tests.search.builders import StudySpec, add_studies, tiny_model, unit_vectors, write_clip


def _catalog(url: str, folder, n: int, start: int = 0) -> list[int]:
    specs = [
        StudySpec(uid=f"1.2.{i}", patient=f"p{i}", clip_path=write_clip(folder, f"1.2.{i}", i),
                  impression=f"impression {i}" if i % 2 == 0 else None)
        for i in range(start, start + n)
    ]
    return add_studies(url, specs)


def embed_studies(url, model, checkpoint_hash, *, batch_size=32, workers=0):
    return embed_pending(url, model, checkpoint_hash, "video",
                         EmbedOptions(batch_size=batch_size, workers=workers, progress=False))


def _active(url: str, kind: str) -> IndexBuild:
    with session_scope(url) as session:
        return session.scalar(select(IndexBuild).where(IndexBuild.kind == kind, IndexBuild.active.is_(True)))


def test_vectors_and_index_ids_line_up_with_catalog_rows(db_url, tmp_path):
    model, meta = tiny_model()
    ids = _catalog(db_url, tmp_path, 5)
    skipped = add_studies(db_url, [
        StudySpec(uid="9.1", state=StudyState.WITHDRAWN, clip_path=write_clip(tmp_path, "9.1", 91)),
        StudySpec(uid="9.2", state=StudyState.SCANNED),
    ])
    broken = add_studies(db_url, [StudySpec(uid="9.3", clip_path=str(tmp_path / "missing.npz"))])[0]

    times = embed_studies(db_url, model, meta.hash, batch_size=2, workers=0)
    assert times.done == 5 and times.failed == [broken]
    with session_scope(db_url) as session:
        stored_ids, stored = vectors_of(session, meta.hash, "video")
        errors = session.scalars(select(IngestError.study_uid).where(IngestError.stage == "embed")).all()
        clips = {s.id: s.clip_path for s in session.scalars(select(Study).where(Study.id.in_(ids)))}
    assert stored_ids.tolist() == ids and not set(skipped) & set(stored_ids.tolist())
    assert errors == ["9.3"]
    expected = model.encode_studies(collate_studies([load_clip(clips[i]) for i in ids])).detach().numpy()
    np.testing.assert_allclose(stored, expected, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=2e-3)

    assert embed_pending(db_url, model, meta.hash, "report", EmbedOptions(progress=False)).done == 3
    video = update_index(db_url, meta.hash, "video", tmp_path / "index")
    assert (video.action, video.index_key, video.n_vectors) == ("full", "Flat", 5)
    build = _active(db_url, "video")
    assert sorted(build.study_ids) == ids and build.checkpoint_hash == meta.hash
    import faiss

    index = faiss.read_index(build.path)
    np.testing.assert_array_equal(np.stack([index.reconstruct(i) for i in ids]), stored)
    assert update_index(db_url, meta.hash, "report", tmp_path / "index").n_vectors == 3
    # nothing new: nothing to embed, index unchanged
    assert embed_studies(db_url, model, meta.hash, workers=0).done == 0
    assert update_index(db_url, meta.hash, "video", tmp_path / "index").action == "unchanged"


def test_incremental_add_withdraw_and_new_checkpoint(db_url, tmp_path):
    model, meta = tiny_model()
    ids = _catalog(db_url, tmp_path, 3)
    embed_studies(db_url, model, meta.hash, workers=0)
    first = update_index(db_url, meta.hash, "video", tmp_path / "index")

    new = _catalog(db_url, tmp_path, 2, start=10)
    assert embed_studies(db_url, model, meta.hash, workers=0).done == 2
    second = update_index(db_url, meta.hash, "video", tmp_path / "index")
    assert (second.action, second.added, second.n_vectors) == ("incremental", 2, 5)
    active = _active(db_url, "video")
    assert active.id == second.build_id != first.build_id
    assert sorted(active.study_ids) == ids + new and active.params["incremental_from"] == first.build_id

    with session_scope(db_url) as session:
        session.get(Study, ids[0]).state = StudyState.WITHDRAWN
    third = update_index(db_url, meta.hash, "video", tmp_path / "index")
    assert (third.action, third.n_vectors) == ("full", 4)
    assert ids[0] not in _active(db_url, "video").study_ids

    other_model, other = tiny_model(1)
    assert other.hash != meta.hash
    assert embed_studies(db_url, other_model, other.hash, workers=0).done == 4
    fourth = update_index(db_url, other.hash, "video", tmp_path / "index")
    assert fourth.action == "full" and _active(db_url, "video").checkpoint_hash == other.hash
    with session_scope(db_url) as session:
        assert session.query(IndexBuild).filter(IndexBuild.active.is_(True)).count() == 1


def test_partition_is_deterministic_and_complete():
    items = list(range(10))
    shares = [partition(items, i, 3) for i in range(3)]
    assert shares[0] == [0, 3, 6, 9] and sorted(sum(shares, [])) == items
    with pytest.raises(ValueError):
        partition(items, 3, 3)


def test_index_rule_and_tuned_recall():
    assert index_policy.choose_index_key(1_000, 256) == "Flat"
    assert index_policy.choose_index_key(100_000, 256) == "IVF1024,Flat"
    assert index_policy.choose_index_key(1_000_000, 256) == "IVF4096,Flat"
    assert index_policy.choose_index_key(10_000_000, 256, memory_budget=1 << 30) == "IVF16384,SQ8"
    vectors = unit_vectors(3_000, 32, seed=1)
    built = build_index(np.arange(100, 3_100), vectors, index_key="HNSW32")
    assert built.params["recall_at_10"] >= 0.95 and "efSearch" in built.params["search"]
    built = build_index(np.arange(3_000), vectors, index_key="IVF64,Flat")
    assert built.params["recall_at_10"] >= 0.95 and "nprobe" in built.params["search"]


def test_decoding_workers_get_their_cores_and_threads_come_back(db_url, tmp_path, monkeypatch):
    """With a decoding worker the CPU model runs on the cores left over; the thread setting is restored after."""
    import indexer.index.runner as runner

    model, meta = tiny_model()
    _catalog(db_url, tmp_path, 3)
    seen = []
    real_encode = model.encode_studies
    monkeypatch.setattr(model, "encode_studies", lambda b: seen.append(torch.get_num_threads()) or real_encode(b))
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        assert embed_studies(db_url, model, meta.hash, batch_size=2, workers=1).done == 3
        assert seen and set(seen) == {3} and torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(before)
