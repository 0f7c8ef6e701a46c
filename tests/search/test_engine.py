"""The query engine on hand-made vectors: filters, withdrawals, hybrid fusion, concurrency, refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np
import pytest

from catalog.db import session_scope
from catalog.models import Study, StudyState
from indexer.index import policy as index_policy
from indexer.index.builds import update_index
from search import vector_index
from search.engine import Engine
from search.errors import BadQuery, IndexMismatch, IndexMissing, UnknownStudy
from search.filters import Filters
from search.fusion import reciprocal_rank_fusion
from tests.search.builders import StudySpec, add_studies, exact_top, store_vectors, tiny_model, unit_vectors

N = 1_000


def _engine(url: str, query: np.ndarray | None = None) -> Engine:
    model, meta = tiny_model()
    engine = Engine(url=url, model=model, meta=meta, checkpoint=meta.hash, refresh_seconds=0.0)
    engine.refresh(force=True)
    if query is not None:
        engine._encode = lambda text: query  # hand-made query vector instead of the text tower
    return engine


def _archive(url: str, tmp_path, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """``n`` studies (age = i % 100, every third with a report) with clustered video and report vectors."""
    specs = [
        StudySpec(uid=f"2.{i}", age=i % 100, sex="FM"[i % 2], patient=f"p{i // 2}",
                  institution=("site_a", "site_b")[i % 2], impression=f"report {i}" if i % 3 == 0 else None)
        for i in range(n)
    ]
    ids = np.array(add_studies(url, specs), dtype=np.int64)
    vectors = unit_vectors(n, 32, seed=2)
    hash_ = tiny_model()[1].hash
    store_vectors(url, hash_, "video", ids, vectors)
    store_vectors(url, hash_, "report", ids[::3], unit_vectors(len(ids[::3]), 32, seed=3))
    update_index(url, hash_, "video", tmp_path / "index")
    update_index(url, hash_, "report", tmp_path / "index")
    return ids, vectors


@pytest.mark.parametrize("path", ["subset", "selector", "ivf"])
def test_filtered_search_returns_k_correct_hits(db_url, tmp_path, monkeypatch, path):
    if path == "ivf":
        monkeypatch.setattr(index_policy, "exact_max", lambda dim: 100)
    ids, vectors = _archive(db_url, tmp_path)
    if path != "subset":
        monkeypatch.setattr(vector_index, "SUBSET_EXACT_MAX", 0)
    queries = unit_vectors(20, 32, seed=9) if path == "ivf" else unit_vectors(2, 32, seed=9)
    engine = _engine(db_url)
    key = engine.status()["indexes"]["video"]["index_key"]
    assert key.startswith("IVF") if path == "ivf" else key == "Flat"
    ages = np.arange(N) % 100
    for filters, allowed in [
        (Filters(age_max=0), ages == 0),  # 1 %
        (Filters(age_max=9), ages <= 9),  # 10 %
        (None, np.ones(N, dtype=bool)),  # 100 %
    ]:
        found = 0
        for query in queries:
            engine._encode = lambda text, q=query: q
            hits = engine.query("anything", k=10, mode="video", filters=filters)
            expected = exact_top(ids[allowed], vectors[allowed], query, 10)
            got = [h.study_id for h in hits]
            assert len(got) == 10 and set(got) <= set(ids[allowed].tolist())
            assert [h.rank for h in hits] == list(range(1, 11))
            assert all(h.signals == ("video",) and h.score == pytest.approx(h.signal_scores["video"]) for h in hits)
            if path != "ivf":
                assert got == expected
            found += len(set(got) & set(expected))
        assert found / (10 * len(queries)) >= 0.9  # approximate (IVF) search: recall@10


def test_withdrawn_and_deleted_studies_vanish_at_once(db_url, tmp_path):
    ids, vectors = _archive(db_url, tmp_path, n=50)
    query = vectors[7]
    engine = _engine(db_url, query)
    first = engine.query("q", k=5, mode="video")
    assert first[0].study_id == ids[7]
    with session_scope(db_url) as session:
        session.get(Study, int(ids[7])).state = StudyState.WITHDRAWN
        session.delete(session.get(Study, first[1].study_id))
    after = engine.query("q", k=5, mode="video")
    assert len(after) == 5 and {ids[7], first[1].study_id}.isdisjoint(h.study_id for h in after)
    assert [h.study_id for h in after[:3]] == [h.study_id for h in first[2:5]]
    filtered = engine.query("q", k=5, mode="video", filters=Filters(age_min=0))
    assert [h.study_id for h in filtered] == [h.study_id for h in after]


def test_incremental_build_is_picked_up_without_reopening(db_url, tmp_path):
    ids, vectors = _archive(db_url, tmp_path, n=20)
    engine = _engine(db_url, vectors[0])
    new = add_studies(db_url, [StudySpec(uid="3.1")])
    store_vectors(db_url, tiny_model()[1].hash, "video", new, vectors[:1])
    assert update_index(db_url, tiny_model()[1].hash, "video", tmp_path / "index").action == "incremental"
    assert new[0] in [h.study_id for h in engine.query("q", k=2, mode="video")]


def test_hybrid_fusion_orders_by_reciprocal_rank(db_url, tmp_path):
    assert reciprocal_rank_fusion({"video": [2, 1, 3], "report": [1, 3]}) == [
        (1, 1 / 62 + 1 / 61), (3, 1 / 63 + 1 / 62), (2, 1 / 61)
    ]
    # hand-made: video ranks 2 > 1 > 3 > 4, report ranks 1 > 3 (study 2 has no report)
    e = np.eye(32, dtype=np.float32)
    query = e[0]
    video = np.stack([0.8 * e[0] + 0.6 * e[1], 0.9 * e[0] + np.sqrt(0.19) * e[1], 0.5 * e[0] + np.sqrt(0.75) * e[1],
                      0.1 * e[0] + np.sqrt(0.99) * e[1]])
    report = np.stack([0.95 * e[0] + np.sqrt(1 - 0.95**2) * e[2], 0.7 * e[0] + np.sqrt(0.51) * e[2]])
    ids = add_studies(db_url, [StudySpec(uid=f"4.{i}", impression="r" if i in (0, 2) else None) for i in range(4)])
    hash_ = tiny_model()[1].hash
    store_vectors(db_url, hash_, "video", ids, video)
    store_vectors(db_url, hash_, "report", [ids[0], ids[2]], report)
    update_index(db_url, hash_, "video", tmp_path / "index")
    update_index(db_url, hash_, "report", tmp_path / "index")
    engine = _engine(db_url, query)
    both = engine.query("q", k=4, mode="both")
    assert [h.study_id for h in both] == [ids[0], ids[2], ids[1], ids[3]]
    assert both[0].signals == ("video", "report") and both[2].signals == ("video",)
    assert both[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert [h.study_id for h in engine.query("q", k=4, mode="video")] == [ids[1], ids[0], ids[2], ids[3]]
    assert [h.study_id for h in engine.query("q", k=4, mode="report")] == [ids[0], ids[2]]


def test_similar_and_scores_for(db_url, tmp_path):
    ids, vectors = _archive(db_url, tmp_path, n=60)
    engine = _engine(db_url, vectors[10])
    hits = engine.similar("2.10", k=5)
    assert ids[10] not in [h.study_id for h in hits] and len(hits) == 5
    assert [h.study_id for h in hits] == exact_top(np.delete(ids, 10), np.delete(vectors, 10, 0), vectors[10], 5)
    same_patient = engine.similar("2.10", k=59, exclude_same_patient=True)
    assert ids[11] not in [h.study_id for h in same_patient] and len(same_patient) == 58
    with pytest.raises(UnknownStudy):
        engine.similar("no.such.uid")
    scored = engine.scores_for("q", mode="video", filters=Filters(sex="F"))
    assert len(scored) == 30 and all(h.patient_sex == "F" for h in scored)
    assert [h.score for h in scored] == sorted((h.score for h in scored), reverse=True)


def test_concurrent_queries_equal_serial(db_url, tmp_path):
    _archive(db_url, tmp_path, n=200)
    model, meta = tiny_model()
    engine = Engine(url=db_url, model=model, meta=meta, checkpoint=meta.hash)
    engine.refresh(force=True)
    texts = ["enlarged left ventricle", "no late enhancement", "pericardial effusion", "normal study"] * 3
    cases = [(t, m, f) for t in texts for m, f in (("both", None), ("video", Filters(age_max=49)))]
    serial = [[(h.study_id, h.score) for h in engine.query(t, k=7, mode=m, filters=f)] for t, m, f in cases]
    engine._encode.cache_clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(
            lambda c: [(h.study_id, h.score) for h in engine.query(c[0], k=7, mode=c[1], filters=c[2])], cases))
    assert parallel == serial


def test_gpu_path_gives_cpu_results(sqlite_url, tmp_path, monkeypatch):
    """The GPU code path (over-fetch and filter, no selector) on a stand-in index gives the CPU results."""
    ids, vectors = _archive(sqlite_url, tmp_path, n=300)
    engine = _engine(sqlite_url)
    cpu = engine._snapshot.indexes["video"]
    gpu = dataclasses.replace(cpu, gpu_index=faiss.clone_index(cpu.cpu_index))
    monkeypatch.setattr(vector_index, "SUBSET_EXACT_MAX", 0)
    rng = np.random.default_rng(0)
    for fraction in (0.01, 0.1, 0.5, 1.0):
        allowed = np.sort(rng.choice(ids, size=max(1, int(fraction * len(ids))), replace=False))
        denied = ids[:5]
        q = vectors[rng.integers(len(ids))]
        for kw in ({"allowed": allowed}, {"denied": denied}, {"allowed": allowed, "denied": denied}):
            a, b = cpu.search(q, 10, **kw), gpu.search(q, 10, **kw)
            assert a.ids.tolist() == b.ids.tolist()


def test_bad_inputs_and_refusals(sqlite_url, tmp_path):
    from catalog.settings import Settings

    first, second = (tiny_model(0)[1], tiny_model(1)[1])
    from tests.search.builders import tiny_checkpoints

    ckpt_a, ckpt_b = tiny_checkpoints()
    settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    with pytest.raises(IndexMissing, match="cmr index"):
        Engine.open(settings, checkpoint=ckpt_a)
    _archive(sqlite_url, tmp_path, n=20)
    with pytest.raises(IndexMismatch, match="run `cmr index`") as err:
        Engine.open(settings, checkpoint=ckpt_b)
    assert second.hash in str(err.value) and first.hash in str(err.value)
    engine = Engine.open(settings, checkpoint=ckpt_a)
    assert engine.status()["checkpoint_hash"] == first.hash
    for bad in ("", "   \n\t", "x" * 2_001, "a" * 100_000):
        with pytest.raises(BadQuery):
            engine.query(bad)
    with pytest.raises(BadQuery):
        engine.query("ok", mode="images")
    with pytest.raises(BadQuery):
        engine.query("ok", k=0)
    assert len(engine.query("dilated left ventricle", k=3, filters=Filters(date_from=dt.date(2000, 1, 1)))) == 3


def test_evaluate_modes_reports_precision_per_diagnosis(sqlite_url, tmp_path):
    from cmrclip.train.search_modes import VARIANTS, precision_at_k

    _archive(sqlite_url, tmp_path, n=40)
    truth = {f"2.{i}": {"conditions": "dilated_cardiomyopathy" if i % 2 else ""} for i in range(40)}
    engine = _engine(sqlite_url, unit_vectors(1, 32, seed=5)[0])  # one ranking for every query
    # site_a held out: its 20 studies (plus site_b's test split) are searched, so a full top 10 exists
    rows = precision_at_k(engine, truth, withhold=0.5, diagnoses=("normal", "dilated_cardiomyopathy"),
                          holdout_site="site_a")
    assert [r["diagnosis"] for r in rows] == ["normal", "dilated_cardiomyopathy", "mean"]
    labels = ["video", "report", "both", "both+negation", "understood"]
    assert len(VARIANTS) == 5 and all(0.0 <= r[lab] <= 1.0 for r in rows for lab in labels)
    assert rows[0]["video"] + rows[1]["video"] == pytest.approx(1.0)  # same top 10; every study is one or the other
    # compound queries: "no LGE" is relevant for every study here (no finding is set), "LGE with ..." for none
    rows = precision_at_k(engine, truth, diagnoses=(), holdout_site="site_a", compound=True)
    by_query = {r["query"]: r for r in rows}
    assert [r["diagnosis"] for r in rows][-4:] == ["compound mean", "numeric mean", "territory mean", "rare mean"] \
        or [r["diagnosis"] for r in rows][-3:] == ["compound mean", "numeric mean", "territory mean"]
    assert by_query["no late gadolinium enhancement"]["video"] == pytest.approx(1.0)
    assert by_query["late gadolinium enhancement with normal left ventricular size"]["both"] == 0.0


def test_evaluate_by_example_draws_training_examples(sqlite_url, tmp_path):
    """One row per diagnosis with enough training studies to draw from, the text and n-shot columns, a mean."""
    from cmrclip.train.search_modes import by_example, examples_table

    _archive(sqlite_url, tmp_path, n=90)
    truth = {f"2.{i}": {"conditions": "dilated_cardiomyopathy" if i % 3 else "normal"} for i in range(90)}
    engine = _engine(sqlite_url, unit_vectors(1, 32, seed=5)[0])
    rows = by_example(engine, truth, shots=(1, 3), episodes=2, diagnoses=("normal", "dilated_cardiomyopathy"),
                      holdout_site="site_a")
    assert [r["diagnosis"] for r in rows] == ["normal", "dilated_cardiomyopathy", "mean"]
    assert set(rows[0]) == {"diagnosis", "query", "text", "text, video only", "1-shot", "3-shot", "text+3"}
    assert all(0.0 <= r[c] <= 1.0 for r in rows for c in ("text", "1-shot", "3-shot", "text+3"))
    assert "| mean |" in examples_table(rows, 10)
