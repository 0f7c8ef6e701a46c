"""Study embedding: the Ray engine against the local runner on this machine, and the per-study costs that the
scaling model in docker/README.md ("Scale") rests on.

    python bench/index_ray.py --studies 96 [--config cpu-small] [--batch-size 16] [--cpus 2] [--json out.json]

Builds a throwaway SQLite catalog with synthetic clip files (all six views, float16, compressed like the clip
cache), an untrained model of the given config, then measures:

- decode: ``load_clip`` seconds per study on one core, and clip-file MB per study (what readers pull from storage);
- model: the mapper's (``stages.Mapper``) seconds per study at the batch size (one process, all cores);
- local: the local driver's ``drivers.embed_pending`` wall time (DataLoader workers decode while the model runs),
  and its ratio to the bare model per study (the whole pipeline, catalog reads and vector writes included,
  against the mapper), split into the time the runner waits for decoded batches, runs the model and writes vectors;
- ray: ``drivers.embed_with_ray`` wall time on a local Ray instance of ``--cpus`` CPUs (model actors that
  decode their own partitions), with and without the one-off start (Ray instance, actor start-up, model load),
  and the overhead ratio ray / local.

``bench_index_ray(...)`` returns the same numbers as a dict, for the index bench to call.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from catalog.db import session_scope
from catalog.models import Study, StudyState, StudyVector
from cmrclip.batch import collate_studies
from cmrclip.checkpoint import load_checkpoint, save_checkpoint
from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE, LGE_LAX_MAX, SAX_LEVELS, load_clip, save_clip
from cmrclip.factory import create_model
from cmrclip.inference import pick_device
from indexer.index.drivers import EmbedOptions, RayOptions, embed_pending, embed_with_ray
from indexer.index.stages import Batch, Mapper
from migrations.apply import upgrade

log = logging.getLogger(__name__)
console = Console()


def _synthetic_clip(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Smooth blobs that move, plus noise: compresses about as well as a cropped cine."""
    yy, xx = np.mgrid[:CLIP_SIZE, :CLIP_SIZE] / CLIP_SIZE

    def cine() -> np.ndarray:
        cy, cx, r = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.1, 0.25)
        frames = [np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (r * (1 - 0.3 * np.sin(np.pi * t / CLIP_FRAMES))) ** 2)
                  for t in range(CLIP_FRAMES)]
        return (np.stack(frames) + rng.normal(0, 0.03, (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE))).astype(np.float16)

    def still() -> np.ndarray:
        return (np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.05) + rng.normal(0, 0.03, yy.shape)).astype(np.float16)

    return {
        "sax": np.stack([cine() for _ in range(SAX_LEVELS)]),
        "2ch": cine(), "3ch": cine(), "4ch": cine(),
        "lge_sax": np.stack([still() for _ in range(SAX_LEVELS)]),
        "lge_lax": np.stack([still() for _ in range(LGE_LAX_MAX)]),
    }


def make_catalog(root: Path, n_studies: int, seed: int = 0) -> tuple[str, list[Path]]:
    """A migrated SQLite catalog of ``n_studies`` preprocessed studies with clip files under ``root``."""
    rng = np.random.default_rng(seed)
    url = f"sqlite:///{root / 'catalog.sqlite'}"
    upgrade(url)
    paths = []
    with session_scope(url) as session:
        for i in range(n_studies):
            path = root / "clips" / f"{i}.npz"
            save_clip(path, _synthetic_clip(rng))
            paths.append(path)
            session.add(Study(study_uid=f"9.9.{i}", patient_key=f"k{i}", state=StudyState.PREPROCESSED,
                              clip_path=str(path), views=["sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax"]))
    return url, paths


def _clear_vectors(url: str) -> None:
    with session_scope(url) as session:
        session.query(StudyVector).delete()


def bench_index_ray(
    n_studies: int = 96,
    *,
    config: str = "cpu-small",
    batch_size: int = 16,
    cpus: int = 2,
    workers: int = 1,
    device: str = "auto",
) -> dict[str, Any]:
    """Measure decode, model, local and Ray throughput on this machine; returns the numbers (seconds, MB, ratios).

    ``device="auto"`` uses the GPU(s) when present: the local runner on one, the Ray engine one actor per GPU.
    """
    import ray

    torch.manual_seed(0)
    dev = pick_device(device)
    out: dict[str, Any] = {"studies": n_studies, "config": config, "batch_size": batch_size, "cpus": cpus,
                           "device": str(dev)}
    with tempfile.TemporaryDirectory(prefix="cmr-bench-ray-") as tmp:
        root = Path(tmp)
        url, paths = make_catalog(root, n_studies)
        checkpoint = root / "model.pt"
        save_checkpoint(create_model(config, pretrained_text=False), checkpoint, "bench")
        model, meta = load_checkpoint(checkpoint, dev)

        out["clip_mb_per_study"] = sum(p.stat().st_size for p in paths) / n_studies / 1e6
        t0 = time.perf_counter()
        clips = [load_clip(p) for p in paths[: min(32, n_studies)]]
        out["decode_s_per_study"] = (time.perf_counter() - t0) / len(clips)
        mapper = Mapper(model, "video")
        batch = Batch(list(range(len(clips[:batch_size]))), collate_studies(clips[:batch_size]))
        mapper(batch)  # warm-up
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            mapper(batch)  # returns numpy: synchronises with the GPU
        out["model_s_per_study"] = (time.perf_counter() - t0) / (reps * len(clips[:batch_size]))

        t0 = time.perf_counter()
        options = EmbedOptions(batch_size=batch_size, workers=workers, device=device, progress=False)
        local = embed_pending(url, model, meta.hash, "video", options)
        out["local_s"] = time.perf_counter() - t0
        out["local_per_s"] = local.done / out["local_s"]
        out["local_stages_ms_per_study"] = {stage: getattr(local, stage) / local.done * 1e3
                                            for stage in ("read", "map", "write")}
        # the pipeline against the bare model on the same batch size (goal: within 1.2x, the model never starves)
        out["local_vs_model"] = out["local_s"] / local.done / out["model_s_per_study"]
        _clear_vectors(url)

        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        out["ray_init_s"] = time.perf_counter() - t0
        try:
            options = EmbedOptions(batch_size=batch_size, device=device, progress=False, ray=RayOptions())
            t0 = time.perf_counter()
            first = embed_with_ray(url, checkpoint, ["video"], options).times["video"]
            out["ray_s"] = time.perf_counter() - t0
            # Steady state: a second run on a warm instance still starts its actors and loads the model, so the
            # difference to a run of one study is the start-up; the rest is per-study work.
            _clear_vectors(url)
            with session_scope(url) as session:
                keep = session.query(Study.id).order_by(Study.id).limit(1).scalar()
                session.query(Study).filter(Study.id != keep).update({Study.state: StudyState.SCANNED})
            t0 = time.perf_counter()
            embed_with_ray(url, checkpoint, ["video"], options)
            out["ray_startup_s"] = time.perf_counter() - t0
        finally:
            ray.shutdown()
        assert first.done == n_studies, f"ray embedded {first.done} of {n_studies}"
        out["ray_per_s"] = n_studies / out["ray_s"]
        out["ray_steady_per_s"] = n_studies / max(out["ray_s"] - out["ray_startup_s"], 1e-9)
        out["overhead_ratio"] = out["ray_s"] / out["local_s"]
        out["steady_overhead_ratio"] = (out["ray_s"] - out["ray_startup_s"]) / out["local_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=96)
    parser.add_argument("--config", default="cpu-small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the local runner")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    r = bench_index_ray(args.studies, config=args.config, batch_size=args.batch_size, cpus=args.cpus,
                        workers=args.workers, device=args.device)
    title = f"index: Ray vs local, {args.studies} studies, {args.config} on {r['device']}"
    table = Table("measure", "value", title=title)
    table.add_row("clip file per study", f"{r['clip_mb_per_study']:.2f} MB")
    table.add_row("decode (load_clip), one core", f"{r['decode_s_per_study'] * 1e3:.1f} ms/study")
    table.add_row(f"model (mapper, batch {args.batch_size})", f"{r['model_s_per_study'] * 1e3:.1f} ms/study")
    table.add_row("local runner", f"{r['local_s']:.1f} s, {r['local_per_s']:.1f} studies/s")
    table.add_row("local runner / bare model (per study)", f"{r['local_vs_model']:.2f}")
    table.add_row("local: waiting for decode / model / write",
                  " / ".join(f"{v:.1f}" for v in r["local_stages_ms_per_study"].values()) + " ms/study")
    table.add_row("ray: instance start", f"{r['ray_init_s']:.1f} s")
    table.add_row("ray: run (incl. actor start + model load)", f"{r['ray_s']:.1f} s, {r['ray_per_s']:.1f} studies/s")
    table.add_row("ray: per-run start-up (1-study run)", f"{r['ray_startup_s']:.1f} s")
    table.add_row("ray: steady state", f"{r['ray_steady_per_s']:.1f} studies/s")
    table.add_row("overhead ratio ray/local (whole run)", f"{r['overhead_ratio']:.2f}")
    table.add_row("overhead ratio ray/local (steady state)", f"{r['steady_overhead_ratio']:.2f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
