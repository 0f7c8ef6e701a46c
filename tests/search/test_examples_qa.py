"""Query by example (Rocchio prototypes of example studies) and the images-versus-report discrepancy list."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.orm import sessionmaker

from catalog.db import get_engine
from cmrclip.language import FINDINGS
from cmrclip.language.facts import NUMBERS
from indexer.index.builds import update_index
from indexer.reports import backfill_facts
from search import qa
from search.engine import Engine
from search.errors import BadQuery, UnknownStudy
from search.examples import UNLIKE_WEIGHT, Examples, prototype, with_text
from search.fact_table import CODE, FactTable
from search.filters import Filters
from search.understanding import ImageReading
from tests.search.builders import StudySpec, add_studies, store_vectors, tiny_model, unit_vectors

DIM = 32


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- the arithmetic -----------------------------------------------------------------------------------------------


def test_prototype_is_rocchio():
    rng = np.random.default_rng(0)
    like, unlike = rng.standard_normal((3, DIM)) * 5, rng.standard_normal((2, DIM))
    expected = _unit(_unit(like).mean(0) - UNLIKE_WEIGHT * _unit(unlike).mean(0))
    assert np.allclose(prototype(like, unlike), expected, atol=1e-6)
    assert np.allclose(prototype(like), _unit(_unit(like).mean(0)), atol=1e-6), "lengths do not weigh examples"
    assert prototype(np.zeros((0, DIM)), unlike) is None
    text = _unit(rng.standard_normal(DIM))
    assert np.allclose(with_text(None, text), text, atol=1e-6)
    mixed = with_text(prototype(like), text)
    assert np.isclose(np.linalg.norm(mixed), 1) and mixed @ text > prototype(like) @ text
    with pytest.raises(BadQuery):
        with_text(None, None)


def test_examples_refuse_contradictions():
    with pytest.raises(BadQuery, match="both"):
        Examples(like=(1, 2), unlike=(2,))
    with pytest.raises(BadQuery, match="at most"):
        Examples(like=tuple(range(1, 300)))
    assert not Examples() and Examples(unlike=(4,))
    assert Examples(like=(3, 7), unlike=(9,)).describe() == "like #3, #7; unlike #9"


# --- query by example through the engine --------------------------------------------------------------------------


def _clustered(url: str, tmp_path, n: int = 240) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` studies in three clusters (``i % 3``) of video vectors; half the studies of site_b."""
    specs = [StudySpec(uid=f"3.{i}", patient=f"p{i}", institution=("site_a", "site_b")[i % 2]) for i in range(n)]
    ids = np.array(add_studies(url, specs), dtype=np.int64)
    centres = unit_vectors(3, DIM, seed=5)
    rng = np.random.default_rng(6)
    cluster = np.arange(n) % 3
    vectors = _unit(centres[cluster] + 0.35 * rng.standard_normal((n, DIM)) / np.sqrt(DIM)).astype(np.float32)
    hash_ = tiny_model()[1].hash
    store_vectors(url, hash_, "video", ids, vectors)
    update_index(url, hash_, "video", tmp_path / "index")
    return ids, cluster, centres


def _engine(url: str) -> Engine:
    model, meta = tiny_model()
    engine = Engine(url=url, model=model, meta=meta, checkpoint=meta.hash, refresh_seconds=0.0)
    engine.refresh(force=True)
    return engine


def test_more_like_these(db_url, tmp_path):
    ids, cluster, centres = _clustered(db_url, tmp_path)
    engine = _engine(db_url)
    of = dict(zip(ids.tolist(), cluster.tolist(), strict=True))
    like = tuple(ids[cluster == 0][:3].tolist())
    hits = engine.query("", k=20, mode="video", examples=Examples(like=like))
    assert len(hits) == 20 and not set(like) & {h.study_id for h in hits}, "the examples themselves are not hits"
    assert all(of[h.study_id] == 0 for h in hits)
    assert hits[0].why.startswith("like the examples 0.")
    # positives from two clusters; negatives from one of them push the results to the other
    mixed = (*ids[cluster == 0][:2].tolist(), *ids[cluster == 1][:2].tolist())
    both = engine.query("", k=30, mode="video", examples=Examples(like=mixed))
    pushed = engine.query("", k=30, mode="video",
                          examples=Examples(like=mixed, unlike=tuple(ids[cluster == 1][2:6].tolist())))
    share = [sum(of[h.study_id] == 0 for h in r) / len(r) for r in (both, pushed)]
    assert share[1] > share[0] and share[1] >= 0.9, share
    # words and examples: the text's vector (here the centre of cluster 2) joins the prototype
    engine._encode = lambda text: centres[2].astype(np.float32)
    joined = engine.query("something else", k=20, mode="video", examples=Examples(like=like))
    assert {of[h.study_id] for h in joined} <= {0, 2} and any(of[h.study_id] == 2 for h in joined)
    # filters hold
    site_b = engine.query("", k=10, mode="video", examples=Examples(like=like), filters=Filters(
        institutions=("site_b",)))
    assert all(int(h.study_id) in ids[1::2] for h in site_b) and len(site_b) == 10


def test_example_errors(db_url, tmp_path):
    ids, _, _ = _clustered(db_url, tmp_path, n=30)
    (unembedded,) = add_studies(db_url, [StudySpec(uid="3.999", patient="q")])
    engine = _engine(db_url)
    with pytest.raises(UnknownStudy, match="#999999"):
        engine.query("", examples=Examples(like=(int(ids[0]), 999_999)))
    with pytest.raises(UnknownStudy, match="embedding"):
        engine.query("", examples=Examples(like=(unembedded,)))
    # negatives only, no words: nothing to search for
    with pytest.raises(BadQuery):
        engine.query("", examples=Examples(unlike=(int(ids[0]),)))


# --- the discrepancy list -----------------------------------------------------------------------------------------


def _table(ids: np.ndarray, findings: np.ndarray) -> FactTable:
    z = np.zeros(len(ids), np.int64)
    return FactTable((), ids, findings.astype(np.int8), np.full((len(ids), len(NUMBERS)), np.nan), z, z, z, z, z, z)


def test_discrepancies_rank_planted_disagreements():
    rng = np.random.default_rng(1)
    n, lge, rv = 80, FINDINGS.index("lge_present"), FINDINGS.index("rv_dilation")
    ids = np.arange(1, n + 1, dtype=np.int64)
    findings = np.zeros((n, len(FINDINGS)), np.int8)
    findings[:, lge] = np.where(np.arange(n) % 2, CODE["present"], CODE["absent"])
    findings[:, rv] = np.where(np.arange(n) % 3, CODE["absent"], CODE["present"])
    probs = np.full((n, len(FINDINGS)), 0.5, np.float32)
    probs[:, lge] = np.where(findings[:, lge] == CODE["present"], 0.8, 0.2) + rng.uniform(-0.1, 0.1, n)
    probs[:, rv] = rng.uniform(0, 1, n)  # the images cannot read this finding: it never makes the list
    planted = {5: ("absent", 0.98), 8: ("present", 0.02)}  # row -> what the report says, what the images say
    for row, (said, p) in planted.items():
        findings[row, lge] = CODE[said]
        probs[row, lge] = p
    findings[11, lge], probs[11, lge] = 0, 0.98  # silent report: weaker than a stated "absent"
    reading = ImageReading(ids, probs, (), {})
    table = _table(ids, findings)
    quality = qa.finding_quality(reading, table)
    assert quality["lge_present"] > 0.8 and quality["rv_dilation"] < qa.MIN_CONFIDENCE and quality["lv_dilation"] == 0
    found = qa.discrepancies(reading, table, limit=10)
    assert [d.study_id for d in found[:3]] == [ids[5], ids[8], ids[11]]  # equal confidence: catalog order
    assert all(d.finding == "lge_present" for d in found)
    assert found[0].confidence >= found[-1].confidence >= qa.MIN_CONFIDENCE
    first = next(d for d in found if d.study_id == ids[5])
    assert first.report == "absent" and first.text() == "report: no LGE; images: LGE 0.98"
    assert next(d for d in found if d.study_id == ids[11]).report == "not mentioned"
    # limited to allowed studies and one finding
    assert [d.study_id for d in qa.discrepancies(reading, table, np.array([ids[8]]))] == [ids[8]]
    assert qa.discrepancies(reading, table, finding="rv_dilation") == []
    with pytest.raises(ValueError, match="unknown finding"):
        qa.discrepancies(reading, table, finding="big heart")


def test_engine_lists_the_study_whose_images_contradict_its_report(db_url, tmp_path):
    """Reports say LGE or no LGE; the images agree except for one study reported as "no LGE" whose vector points
    along the LGE direction: it heads the list, and its Study-page reading flags LGE."""
    n = 40
    texts = ["Extensive subendocardial LGE. Normal LV size." if i % 2 else "No LGE. Normal LV size."
             for i in range(n)]
    ids = add_studies(db_url, [StudySpec(uid=f"4.{i}", patient=f"p{i}", impression=texts[i]) for i in range(n)])
    backfill_facts(sessionmaker(bind=get_engine(db_url), expire_on_commit=False))
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32) * 0.3
    vectors[:, 0] = np.where(np.arange(n) % 2, 1.0, -1.0) + rng.uniform(-0.3, 0.3, n)
    vectors[6, 0] = 2.5  # reported "No LGE", images say LGE
    vectors = _unit(vectors)
    model, meta = tiny_model()
    store_vectors(db_url, meta.hash, "video", ids, vectors)
    update_index(db_url, meta.hash, "video", tmp_path / "index")
    engine = _engine(db_url)
    direction = np.zeros((len(FINDINGS), DIM), np.float32)
    direction[FINDINGS.index("lge_present"), 0] = 1.0
    engine._directions = direction
    found = engine.discrepancies(k=5)
    hit, d = found[0]
    assert hit.study_id == ids[6] and d.finding == "lge_present" and d.report == "absent"
    assert hit.rank == 1 and hit.score == pytest.approx(d.confidence) and hit.why.startswith("report: no LGE")
    probs = engine.image_probabilities(ids[6])
    assert set(probs) == set(FINDINGS) and probs["lge_present"] > 0.9
    assert engine.image_probabilities(999_999) is None
    with pytest.raises(BadQuery):
        engine.discrepancies(finding="nonsense")
