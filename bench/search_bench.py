"""Search benchmark: numpy exact scan vs raw FAISS vs the whole ``Engine.query`` path, at several sizes.

    .venv/bin/python bench/search_bench.py --sizes 10000 100000 1000000 [--out bench/RESULTS.md]

Per N (synthetic clustered unit vectors of the model's dimension; catalog rows in a throwaway PostgreSQL database
for the filter and the join): build time and memory of the index the policy picks, p50/p99 latency single and
batched, recall@10 against exact search (text-like queries, see ``indexer.index.faiss_build.tuning_queries``),
filtered latency and recall (against exact search over the allowed vectors) at 1/10/50 % selectivity, and the
exact scan predicted from measured memory bandwidth. Ratios are against the numpy scan measured in the same run.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One thread per query everywhere (the Engine's setting, search.engine.QUERY_THREADS), so the numpy floor,
# raw FAISS and the engine are measured alike.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from catalog.db import get_engine, session_scope  # noqa: E402
from catalog.models import IndexBuild, Study, StudyState  # noqa: E402
from catalog.search_params import search_parameters  # noqa: E402
from catalog.settings import Settings  # noqa: E402
from cmrclip.checkpoint import save_checkpoint  # noqa: E402
from cmrclip.factory import create_model  # noqa: E402
from indexer.index.faiss_build import build_index, knn_exact, recall_at_k, tuning_queries, write_index  # noqa: E402
from migrations.apply import upgrade  # noqa: E402
from search.engine import QUERY_THREADS, Engine  # noqa: E402
from search.filters import Filters  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
QUERIES = 200
FILTERED_RECALL_QUERIES = 50
BATCH = 32
TEXTS = (
    "enlarged left ventricle",
    "asymmetric septal hypertrophy with LGE",
    "pericardial effusion",
    "reduced right ventricular function",
    "normal study",
    "subendocardial late enhancement inferior wall",
)


def clustered(n: int, dim: int, seed: int, clusters: int = 64, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = centres[rng.integers(0, clusters, m)] + 0.8 * rng.standard_normal((m, dim)).astype(np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timings(fn: Callable[[int], object], n: int, warmup: int = 3) -> np.ndarray:
    """Milliseconds of ``fn(i)`` for i < n, after ``warmup`` untimed calls (with other i, so no cache hits)."""
    for i in range(n, n + warmup):
        fn(i)
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - t
    return out * 1e3


def p(ms: np.ndarray, q: float) -> float:
    return float(np.percentile(ms, q))


def memory_bandwidth_gbs() -> float:
    """Read bandwidth of a single-threaded sum over 512 MB (what a single-query flat scan gets)."""
    x = np.ones(128 * 1024 * 1024, dtype=np.float32)
    x.sum()
    t = time.perf_counter()
    for _ in range(3):
        x.sum()
    return 3 * x.nbytes / (time.perf_counter() - t) / 1e9


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_database(n: int, ages: np.ndarray) -> tuple[str, Callable[[], None]]:
    name = f"cmr_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    with get_engine(url).begin() as conn:
        for s in range(0, n, 50_000):
            conn.execute(
                insert(Study),
                [
                    {
                        "id": i + 1,
                        "study_uid": f"1.9.{i}",
                        "accession": f"B{i}",
                        "patient_key": f"p{i}",
                        "patient_age": int(ages[i]),
                        "patient_sex": "FM"[i % 2],
                        "study_date": dt.date(2024, 1, 1),
                        "institution": "site_a",
                        "manufacturer": "Siemens",
                        "field_strength": 1.5,
                        "views": ["sax"],
                        "state": StudyState.PREPROCESSED,
                        "source": "folder",
                    }
                    for i in range(s, min(n, s + 50_000))
                ],
            )
        if url.startswith("postgresql"):
            conn.execute(text("SELECT setval('studies_id_seq', (SELECT max(id) FROM studies))"))

    def drop() -> None:
        get_engine(url).dispose()
        get_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def bench_size(n: int, checkpoint: Path, dim: int, work: Path, bandwidth: float) -> dict[str, object]:
    rng = np.random.default_rng(n)
    xb = clustered(n, dim, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    xq = tuning_queries(xb, QUERIES, seed=7)
    truth = ids[knn_exact(xb, xq, 10)]
    row: dict[str, object] = {"N": n}

    # numpy exact scan: the floor
    def np_single(i: int) -> None:
        s = xb @ xq[i]
        np.argpartition(-s, 10)[:10]

    np_ms = timings(np_single, min(QUERIES, 50))
    np_batch = timings(lambda i: np.argpartition(-(xq[:BATCH] @ xb.T), 10, axis=1), 5) / BATCH
    row.update(np_p50=p(np_ms, 50), np_p99=p(np_ms, 99), np_batched=float(np.median(np_batch)))
    row["scan_at_bandwidth"] = xb.nbytes / (bandwidth * 1e9) * 1e3

    rss0 = rss_mb()
    t = time.perf_counter()
    built = build_index(ids, xb)
    row["build_s"] = time.perf_counter() - t
    row["index_key"], row["params"] = built.index_key, built.params.get("search", {})
    row["index_mb"] = len(faiss.serialize_index(built.index)) / 1e6
    row["rss_growth_mb"] = rss_mb() - rss0
    params = search_parameters(built.index_key, built.params.get("search", {}), None)
    raw_ms = timings(lambda i: built.index.search(xq[i : i + 1], 10, params=params), QUERIES)
    raw_batch = timings(lambda i: built.index.search(xq[:BATCH], 10, params=params), 5) / BATCH
    _, found = built.index.search(xq, 10, params=params)
    row.update(
        faiss_p50=p(raw_ms, 50),
        faiss_p99=p(raw_ms, 99),
        faiss_batched=float(np.median(raw_batch)),
        recall=recall_at_k(found, truth),
    )

    ages = rng.integers(0, 100, n)
    url, drop = make_database(n, ages)
    try:
        path = write_index(built.index, work / f"video-{n}.faiss")
        from cmrclip.checkpoint import read_checkpoint_meta

        meta = read_checkpoint_meta(checkpoint)
        with session_scope(url) as session:
            session.add(
                IndexBuild(
                    checkpoint_hash=meta.hash,
                    kind="video",
                    path=str(path),
                    index_key=built.index_key,
                    n_vectors=n,
                    study_ids=[],
                    params=built.params,
                    active=True,
                )
            )
        engine = Engine.open(Settings(data_dir=work, database_url=url), checkpoint=checkpoint, refresh_seconds=60)
        model = engine.model
        with torch.inference_mode():
            text_ms = timings(lambda i: model.encode_texts([f"{TEXTS[i % len(TEXTS)]} {i}"]), 50)
        fresh = timings(lambda i: engine.query(f"{TEXTS[i % len(TEXTS)]} case {i}", k=10, mode="video"), 100)
        cached = timings(lambda i: engine.query(TEXTS[i % len(TEXTS)], k=10, mode="video"), 100)
        row.update(
            text_p50=p(text_ms, 50), engine_p50=p(fresh, 50), engine_p99=p(fresh, 99), engine_cached_p50=p(cached, 50)
        )
        video = engine._current().indexes["video"]
        for pct, age_max in ((1, 0), (10, 9), (50, 49)):
            f = Filters(age_max=age_max)
            ms = timings(lambda i, f=f: engine.query(TEXTS[i % len(TEXTS)], k=10, mode="video", filters=f), 30)
            row[f"filtered_{pct}_p50"] = p(ms, 50)
            # recall of the filtered search itself, against exact search over the allowed vectors only
            allowed = ids[ages <= age_max]
            exact = allowed[knn_exact(xb[allowed - 1], xq[:FILTERED_RECALL_QUERIES], 10)]
            got = np.array([video.search(q, 10, allowed=allowed).ids for q in xq[:FILTERED_RECALL_QUERIES]])
            row[f"filtered_{pct}_recall"] = recall_at_k(got, exact)
    finally:
        drop()
    return row


def markdown(rows: list[dict[str, object]], bandwidth: float) -> str:
    def f(x: object) -> str:
        return f"{x:.2f}" if isinstance(x, float) else str(x)

    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.node()} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, faiss {faiss.__version__}, "
        f"GPUs: {faiss.get_num_gpus()}); load average {os.getloadavg()[0]:.1f} at the end; single-thread read "
        f"bandwidth {bandwidth:.1f} GB/s. "
        "Latencies in ms; ratios against the numpy exact scan of the same run.",
        "",
        "### Raw search (one query; batched = per query in batches of 32)",
        "",
        "| N | index | params | build s | index MB | numpy p50 | numpy p99 | numpy batched | scan @ bandwidth "
        "| faiss p50 | faiss p99 | faiss batched | faiss / numpy p50 | recall@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                f(v)
                for v in (
                    r["N"],
                    r["index_key"],
                    r["params"],
                    r["build_s"],
                    r["index_mb"],
                    r["np_p50"],
                    r["np_p99"],
                    r["np_batched"],
                    r["scan_at_bandwidth"],
                    r["faiss_p50"],
                    r["faiss_p99"],
                    r["faiss_batched"],
                    r["faiss_p50"] / r["np_p50"],
                    r["recall"],
                )
            )
            + " |"
        )
    lines += [
        "",
        "### Whole path: Engine.query (text encoding + search + withdrawn filter + catalog join, PostgreSQL)",
        "",
        "| N | text encode p50 | engine p50 | engine p99 | engine cached-text p50 | engine / (text + faiss) "
        "| filtered 1% p50 | filtered 10% p50 | filtered 50% p50 | filtered recall@10 1/10/50% | engine / numpy p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["engine_p50"] / (r["text_p50"] + r["faiss_p50"])
        lines.append(
            "| "
            + " | ".join(
                f(v)
                for v in (
                    r["N"],
                    r["text_p50"],
                    r["engine_p50"],
                    r["engine_p99"],
                    r["engine_cached_p50"],
                    ratio,
                    r["filtered_1_p50"],
                    r["filtered_10_p50"],
                    r["filtered_50_p50"],
                    "/".join(f"{r[f'filtered_{pct}_recall']:.2f}" for pct in (1, 10, 50)),
                    r["engine_p50"] / r["np_p50"],
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--model", default="cpu-small", help="Model config whose embedding dimension is used.")
    parser.add_argument("--out", type=Path, help="Also write the tables to this markdown file.")
    args = parser.parse_args()
    faiss.omp_set_num_threads(QUERY_THREADS)
    torch.set_num_threads(QUERY_THREADS)
    work = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    model = create_model(args.model)
    checkpoint = work / "model.pt"
    save_checkpoint(model, checkpoint, "bench")
    dim = model.embed_dim
    del model
    bandwidth = memory_bandwidth_gbs()
    rows = []
    for n in args.sizes:
        rows.append(bench_size(n, checkpoint, dim, work, bandwidth))
        print(markdown(rows, bandwidth), flush=True)
    if args.out:
        args.out.write_text(f"# Search benchmark\n\n{markdown(rows, bandwidth)}")


if __name__ == "__main__":
    main()
