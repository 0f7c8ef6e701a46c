"""The device check, in one short run: CPU vs GPU FAISS search (latency, identical results, filtered search
correct) and GPU training and embedding throughput against the CPU's, measured in the same run. Prints tables.

    python bench/gpu_check.py [--n 1000000] [--batch 64]

Without a GPU it runs the CPU column alone (a dry run of the script). On GPU, search goes through the same
``VectorIndex`` the engine uses: classic GPU indexes ignore ``IDSelector``, so filtered search over-fetches and
filters there, and this check is what shows it still returns k allowed hits equal to exact search.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from search_bench import clustered, p, timings  # noqa: E402
from train_bench import measure, random_batch  # noqa: E402

from cmrclip.batch import batch_to  # noqa: E402
from cmrclip.factory import create_model  # noqa: E402
from indexer.index.faiss_build import build_index, knn_exact, recall_at_k, tuning_queries, write_index  # noqa: E402
from search.vector_index import VectorIndex  # noqa: E402

QUERIES = 200
ALL_VIEWS = ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax")


def search_rows(n: int, dim: int) -> list[str]:
    xb = clustered(n, dim, seed=1)
    ids = np.arange(1, n + 1, dtype=np.int64)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    built = build_index(ids, xb)
    build_s = time.perf_counter() - t
    path = write_index(built.index, Path(tempfile.mkdtemp(prefix="cmr-gpu-check-")) / "video.faiss")
    facts = dict(kind="video", build_id=1, checkpoint_hash="check", index_key=built.index_key,
                 params=built.params, created_at="")
    backends = {"cpu": VectorIndex.load(path=str(path), use_gpu=False, **facts)}
    if faiss.get_num_gpus() > 0:
        backends["gpu"] = VectorIndex.load(path=str(path), use_gpu=True, **facts)
    faiss.omp_set_num_threads(1)
    xq = tuning_queries(xb, QUERIES, seed=7)
    truth = ids[knn_exact(xb, xq, 10)]
    rng = np.random.default_rng(3)
    masks = {pct: rng.random(n) < pct / 100 for pct in (1, 10, 50)}
    lines = [f"{n:,} vectors, D = {dim}, {built.index_key} {built.params.get('search')}, built in {build_s:.1f} s "
             f"with {os.cpu_count()} threads; searches single-threaded on the CPU side", "",
             "| backend | p50 ms | recall@10 | filtered 1/10/50 %: p50 ms | k allowed hits | recall vs exact-allowed |",
             "|---|---|---|---|---|---|"]
    found = {}
    for name, vi in backends.items():
        found[name] = [vi.search(q, 10) for q in xq]
        single = p(timings(lambda i, vi=vi: vi.search(xq[i % QUERIES], 10), QUERIES), 50)
        recall = recall_at_k(np.array([r.ids for r in found[name]]), truth)
        lat, full, rec = [], [], []
        for mask in masks.values():
            allowed = ids[mask]
            got = [vi.search(q, 10, allowed=allowed) for q in xq[:50]]
            exact = allowed[knn_exact(xb[mask], xq[:50], 10)]
            lat.append(p(timings(lambda i, vi=vi, a=allowed: vi.search(xq[i % 50], 10, allowed=a), 50), 50))
            full.append(all(len(r.ids) == 10 and np.isin(r.ids, allowed).all() for r in got))
            rec.append(recall_at_k(np.array([r.ids for r in got]), exact))
        lines.append(f"| {name} | {single:.2f} | {recall:.3f} | {' / '.join(f'{x:.2f}' for x in lat)} | "
                     f"{all(full)} | {' / '.join(f'{x:.3f}' for x in rec)} |")
    if "gpu" in found:
        same = np.mean([np.array_equal(c.ids, g.ids) for c, g in zip(found["cpu"], found["gpu"], strict=True)])
        diff = max(float(np.abs(c.scores - g.scores).max()) for c, g in zip(found["cpu"], found["gpu"], strict=True))
        lines += ["", f"GPU vs CPU: identical top-10 id lists for {same:.1%} of {QUERIES} queries; "
                  f"largest score difference {diff:.2e}"]
    return lines


def model_rows(config: str, batch_size: int) -> list[str]:
    lines = ["| device | train samples/s | encode studies/s | x CPU (train / encode) |", "|---|---|---|---|"]
    rates = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        torch.manual_seed(0)
        model = create_model(config).to(dev)
        batch = batch_to(random_batch(batch_size, ALL_VIEWS, np.random.default_rng(0)), dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        rates[dev] = measure(model, batch, 3 if dev == "cpu" else 20, sync)
        base = rates["cpu"]
        lines.append(f"| {dev} | {rates[dev][0]:.1f} | {rates[dev][1]:.1f} | "
                     f"{rates[dev][0] / base[0]:.1f} / {rates[dev][1] / base[1]:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the search check")
    parser.add_argument("--batch", type=int, default=64, help="studies per training / encoding batch")
    parser.add_argument("--config", default="cpu-small")
    args = parser.parse_args()
    gpu_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"# Device check\n\nGPU: {gpu_name}; faiss {faiss.__version__} sees {faiss.get_num_gpus()} GPU(s); "
          f"torch {torch.__version__}; {os.cpu_count()} CPU cores\n")
    dim = create_model(args.config).embed_dim
    print("\n".join(["## Search", "", *search_rows(args.n, dim), ""]), flush=True)
    print("\n".join([f"## Model ({args.config}, batch {args.batch}, all views, random clips)", "",
                     *model_rows(args.config, args.batch)]))


if __name__ == "__main__":
    main()
