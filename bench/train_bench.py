"""Training and encoding throughput of the video configs, against a naive 3D-CNN tower measured in the same run.

Every row times the whole model (video tower + MiniLM text tower + ClipLoss + AdamW) on random clips:
``train samples/s`` is one optimiser step per batch, ``encode studies/s`` is ``encode_studies`` in inference
mode. The baseline swaps the study tower for a plain 3D CNN (widths 32-128 over five 16-frame 64x64 cines),
the design first measured on this machine. The paper config runs a tiny batch of 4CH-only studies on CPU.

    python bench/train_bench.py [--threads 2] [--batch 32] [--paper-batch 1] [--paper-frames 16]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from open_clip.loss import ClipLoss  # noqa: E402
from torch import nn  # noqa: E402

from cmrclip.batch import collate_studies  # noqa: E402
from cmrclip.clips import CLIP_FRAMES, CLIP_SIZE  # noqa: E402
from cmrclip.factory import create_model  # noqa: E402
from cmrclip.model import CMRClip  # noqa: E402

log = logging.getLogger("train_bench")
CAPTION = "Moderately dilated left ventricle with severely reduced systolic function; no late enhancement."


class Naive3dCnnTower(nn.Module):
    """The baseline study tower: 3D convolutions over five full-resolution cines, averaged over views."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout in (32, 64, 128):
            layers += [nn.Conv3d(cin, cout, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(cout), nn.ReLU()]
            cin = cout
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.proj = nn.Linear(128, embed_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cines = torch.stack([batch["sax"][:, 1], batch["2ch"], batch["3ch"], batch["4ch"], batch["sax"][:, 0]], 1)
        b = cines.shape[0]
        features = self.net(cines.reshape(b * 5, 1, *cines.shape[2:])).reshape(b, 5, -1).mean(1)
        return self.proj(features)


def random_batch(n: int, views: tuple[str, ...], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    shapes = {
        "sax": (3, CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE),
        "lge_sax": (3, CLIP_SIZE, CLIP_SIZE),
        "lge_lax": (2, CLIP_SIZE, CLIP_SIZE),
    }
    return collate_studies(
        [
            {v: rng.random(shapes.get(v, (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE)), dtype=np.float32) for v in views}
            for _ in range(n)
        ]
    )


def timed(fn: Callable[[], None], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Seconds per call, after one warm-up call; ``sync`` waits for queued device work (CUDA)."""
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def measure(
    model: CMRClip, batch: dict[str, torch.Tensor], repeats: int, sync: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """(train samples/s, encode studies/s) for one model and batch (on the model's device)."""
    n = len(batch["present"])
    texts = [CAPTION] * n
    loss_fn, optimizer = ClipLoss(), torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        model.train()
        loss = loss_fn(**model(batch, texts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def encode() -> None:
        model.eval()
        with torch.inference_mode():
            model.encode_studies(batch)

    return n / timed(step, repeats, sync), n / timed(encode, repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the CPU-sized rows")
    parser.add_argument("--paper-batch", type=int, default=1, help="batch size of the paper-vitb16 row")
    parser.add_argument("--paper-frames", type=int, default=16, help="frames per cine fed to paper-vitb16")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (after a warm-up)")
    parser.add_argument("--skip-paper", action="store_true", help="leave out the (slow on CPU) paper row")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    all_views = ("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax")
    full = random_batch(args.batch, all_views, rng)

    rows: list[tuple[str, str, float, float]] = []
    log.info("measuring the naive 3D-CNN baseline ...")
    baseline = create_model("cpu-small")
    baseline.visual = Naive3dCnnTower(baseline.embed_dim)
    rows.append(("naive-3dcnn (baseline)", f"{args.batch} x all views", *measure(baseline, full, args.repeats)))
    for variant in ("full", "static", "single_view"):
        log.info("measuring cpu-small/%s ...", variant)
        model = create_model("cpu-small", video={"variant": variant})
        rows.append((f"cpu-small/{variant}", f"{args.batch} x all views", *measure(model, full, args.repeats)))
    if not args.skip_paper:
        log.info("measuring paper-vitb16 (%d frames, 224 px) ...", args.paper_frames)
        paper = create_model("paper-vitb16", video={"num_frames": args.paper_frames})
        tiny = random_batch(args.paper_batch, ("4ch",), rng)
        rows.append(
            (
                "paper-vitb16",
                f"{args.paper_batch} x 4ch, {args.paper_frames} fr, 224 px",
                *measure(paper, tiny, max(1, args.repeats // 3)),
            )
        )

    base_train, base_encode = rows[0][2], rows[0][3]
    header = f"{'model':<24} {'input':<28} {'train samples/s':>16} {'x base':>7} {'encode studies/s':>17} {'x base':>7}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(header)
    print("-" * len(header))
    for name, inputs, train_rate, encode_rate in rows:
        print(
            f"{name:<24} {inputs:<28} {train_rate:>16.2f} {train_rate / base_train:>7.2f} "
            f"{encode_rate:>17.2f} {encode_rate / base_encode:>7.2f}"
        )


if __name__ == "__main__":
    main()
