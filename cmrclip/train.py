"""Contrastive training of CMR-CLIP on (study clips, report impression) pairs.

This is the training program; the model modules never import it (as open_clip keeps ``open_clip_train`` apart).
A run lives in ``out_dir``: ``train_state.pt`` (resumable state, rewritten every ``save_every`` steps), and at the
end ``model.pt`` (the checkpoint, ``cmrclip.checkpoint`` format), ``loss_curve.png`` and ``history.json``.
Every step's randomness (augmentation, dropout) is seeded from (seed, step), so a killed run restarted with the
same arguments continues from the last saved step and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.loss import ClipLoss
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cmrclip.augment import AugmentConfig, augment_batch
from cmrclip.batch import batch_to, collate_studies
from cmrclip.captions import CaptionSampler
from cmrclip.checkpoint import save_checkpoint
from cmrclip.config import VARIANTS
from cmrclip.dataset import StudyClipDataset, collate_pairs, usable_records
from cmrclip.factory import DEFAULT_MODEL, create_model
from cmrclip.inference import pick_device
from cmrclip.model import CMRClip
from cmrclip.plots import plot_loss_curve
from cmrclip.records import StudyRecord
from cmrclip.splits import split_records

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
CHECKPOINT_FILE = "model.pt"
LOSS_CURVE_FILE = "loss_curve.png"
HISTORY_FILE = "history.json"


def train(
    records: Sequence[StudyRecord],
    out_dir: Path,
    config_name: str = DEFAULT_MODEL,
    variant: str = "full",
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 5e-4,
    seed: int = 0,
    holdout_site: str | None = None,
    preprocess_version: str = "unknown",
    device: str = "auto",
    resume: bool = True,
    progress: bool = True,
    *,
    weight_decay: float = 0.05,
    warmup_fraction: float = 0.05,
    grad_clip: float = 1.0,
    save_every: int = 50,
    max_steps: int | None = None,
    model_overrides: dict[str, Any] | None = None,
    impression_prob: float = 0.5,
) -> Path:
    """Train on the train split of ``records`` and return the checkpoint path (``out_dir/model.pt``).

    ``variant``: ``full`` (all views, all frames), ``static`` (end-diastolic frame only) or ``single_view``
    (4CH only). ``impression_prob``: how often a step's caption is the impression rather than sentences drawn
    from the whole report (``cmrclip.captions``; 1.0 trains on impressions only). ``max_steps`` stops early
    after that many optimiser steps in total (a run restarted with a larger or no limit resumes); the schedule
    always spans ``epochs``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    splits = split_records(records, holdout_site)
    train_set = StudyClipDataset(usable_records(splits["train"], require_caption=True))
    val_set = StudyClipDataset(usable_records(splits["val"], require_caption=True))
    if len(train_set) < 2:
        raise ValueError(f"{len(train_set)} usable training studies; contrastive training needs at least 2")
    batch_size = min(batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    total_steps = epochs * steps_per_epoch
    run_args = {
        "config_name": config_name, "variant": variant, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": seed, "holdout_site": holdout_site, "preprocess_version": preprocess_version,
        "weight_decay": weight_decay, "warmup_fraction": warmup_fraction, "model_overrides": model_overrides,
        "impression_prob": impression_prob,
        "train_studies": sorted(r.study_uid for r in train_set.records),
    }

    torch.manual_seed(seed)
    overrides = dict(model_overrides or {})
    overrides["video"] = {**overrides.get("video", {}), "variant": variant}
    model = create_model(config_name, **overrides).to(dev)
    # the resolved architecture, so a run never resumes into a model whose config file has changed since
    run_args["model_config"] = model.config.to_dict()
    optimizer = _optimizer(model, lr, weight_decay)
    warmup = max(1, int(warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_cosine(s, warmup, total_steps))
    state_path = out_dir / STATE_FILE
    step, history = 0, []
    if resume and state_path.is_file():
        step, history = _load_state(state_path, run_args, model, optimizer, scheduler)
        log.info("resuming %s at step %d of %d", out_dir, step, total_steps)

    aug = AugmentConfig(temporal_roll=variant != "static")
    captioner = CaptionSampler(impression_prob=impression_prob)
    loss_fn = ClipLoss()
    stop = total_steps if max_steps is None else min(total_steps, max_steps)
    bar = tqdm(total=total_steps, initial=step, disable=not progress, desc=f"train {config_name}/{variant}")
    samples, started = 0, time.perf_counter()
    while step < stop:
        epoch, first = divmod(step, steps_per_epoch)
        model.train()
        for indices in _epoch_batches(len(train_set), batch_size, seed, epoch, first):
            generator = _seed_step(seed, step)
            records = [train_set.records[i] for i in indices]
            captions = [captioner(r.caption or "", r.findings, generator) for r in records]
            batch = collate_studies([train_set.clips(i) for i in indices])
            batch = batch_to(augment_batch(batch, aug, generator), dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = loss_fn(**model(batch, captions))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            model.clamp_logit_scale()
            step += 1
            samples += len(captions)
            rate = samples / (time.perf_counter() - started)
            lr_now = optimizer.param_groups[0]["lr"]
            loss_value = loss.item()
            history.append({"step": step, "loss": loss_value, "lr": lr_now, "samples_per_s": rate})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr_now:.2e}", sps=f"{rate:.1f}")
            if step % steps_per_epoch == 0:
                if len(val_set) >= 2:
                    history[-1]["val_loss"] = _validation_loss(model, val_set, batch_size, loss_fn, dev)
                    model.train()
                log.info("epoch %d/%d: loss %.3f, val loss %.3f, %.1f samples/s", step // steps_per_epoch,
                         epochs, loss_value, history[-1].get("val_loss", float("nan")), rate)
            if step % save_every == 0 or step == stop:
                _save_state(state_path, run_args, step, history, model, optimizer, scheduler)
            if step >= stop:
                break
    bar.close()
    if samples:
        log.info("trained %d steps, %.1f samples/s", step, samples / (time.perf_counter() - started))
    _save_state(state_path, run_args, step, history, model, optimizer, scheduler)
    (out_dir / HISTORY_FILE).write_text(json.dumps(history))
    plot_loss_curve(history, out_dir / LOSS_CURVE_FILE)
    training = {k: v for k, v in run_args.items() if k not in ("train_studies", "model_config")}
    training.update(steps=step, total_steps=total_steps, train_size=len(train_set))
    path = out_dir / CHECKPOINT_FILE
    meta = save_checkpoint(model, path, preprocess_version, training=training)
    log.info("checkpoint %s (hash %s)", path, meta.hash)
    return path


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _optimizer(model: CMRClip, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; the pretrained text transformer gets ``lr * text.lr_scale``; no decay on gains, biases, scale."""
    text_ids = {id(p) for p in model.text.transformer.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault((id(p) in text_ids, p.ndim >= 2), []).append(p)
    scale = model.config.text.lr_scale
    return torch.optim.AdamW(
        [
            {"params": params, "lr": lr * (scale if is_text else 1.0), "weight_decay": weight_decay if decay else 0.0}
            for (is_text, decay), params in sorted(groups.items())
        ],
        lr=lr,
    )


def _seed_step(seed: int, step: int) -> torch.Generator:
    """Seed the global RNGs (dropout) and return a generator (augmentation) for one step."""
    step_seed = (seed * 1_000_003 + step) % 2**63
    torch.manual_seed(step_seed)
    return torch.Generator().manual_seed(step_seed)


def _epoch_batches(size: int, batch_size: int, seed: int, epoch: int, first: int) -> Iterator[list[int]]:
    """The batches of one epoch as dataset indices (a seeded shuffle, last partial batch dropped), starting at
    batch ``first``. Clips are cached in memory by the dataset, so no loader workers are needed."""
    generator = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(size, generator=generator).tolist()
    yield from [order[i : i + batch_size] for i in range(first * batch_size, size - batch_size + 1, batch_size)]


@torch.no_grad()
def _validation_loss(
    model: CMRClip, dataset: StudyClipDataset, batch_size: int, loss_fn: ClipLoss, dev: torch.device
) -> float:
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_pairs)
    losses = [float(loss_fn(**model(batch_to(b, dev), c))) for b, c in loader if len(c) >= 2]
    return float(np.mean(losses)) if losses else float("nan")


def _save_state(
    path: Path, run_args: dict[str, Any], step: int, history: list[dict[str, float]], model: CMRClip,
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    state = {
        "run_args": run_args, "step": step, "history": history, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(
    path: Path, run_args: dict[str, Any], model: CMRClip, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, float]]]:
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written by _save_state
    if state["run_args"] != run_args:
        changed = sorted(k for k in run_args if state["run_args"].get(k) != run_args[k])
        raise ValueError(
            f"{path} belongs to a run with other settings ({', '.join(changed)}); "
            "start over (`cmr train --restart`, resume=False) or use another out_dir"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return state["step"], state["history"]
