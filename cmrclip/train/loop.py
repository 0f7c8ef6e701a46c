"""Contrastive training of CMR-CLIP on (study clips, report impression) pairs.

This is the training program; the model modules never import it (as open_clip keeps ``open_clip_train`` apart).
A run is described by one ``TrainConfig`` (``cmrclip.train.config``) and lives in its ``out_dir``:
``train_state.pt`` (resumable state, rewritten every ``save_every`` steps), and at the end ``model.pt`` (the
checkpoint, ``cmrclip.checkpoint`` format), ``loss_curve.png`` and ``history.json``.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.loss import ClipLoss
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cmrclip.batch import batch_to, collate_studies
from cmrclip.checkpoint import lineage_of, load_checkpoint, read_checkpoint_meta, save_checkpoint
from cmrclip.config import VARIANTS
from cmrclip.factory import create_model
from cmrclip.inference import pick_device
from cmrclip.model import CMRClip
from cmrclip.train.augment import AugmentConfig, augment_batch
from cmrclip.train.captions import CaptionSampler
from cmrclip.train.config import TrainConfig
from cmrclip.train.dataset import StudyClipDataset, collate_pairs, usable_records
from cmrclip.train.negatives import clip_loss_with_negatives, swap_laterality
from cmrclip.train.plots import plot_loss_curve
from cmrclip.train.records import StudyRecord
from cmrclip.train.splits import split_records

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
CHECKPOINT_FILE = "model.pt"
LOSS_CURVE_FILE = "loss_curve.png"
HISTORY_FILE = "history.json"


@dataclass
class _Data:
    """The studies a run trains and validates on, and how they are cut into steps."""

    train: StudyClipDataset
    val: StudyClipDataset
    # the batch size in effect (the configured one, clamped to the training split)
    batch_size: int
    steps_per_epoch: int
    total_steps: int


@dataclass
class _Run:
    """What a run carries from step to step, and what ``train_state.pt`` saves."""

    model: CMRClip
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    # the settings a resumed run must match (TrainConfig.settings() + the data and architecture they resolved to)
    run_args: dict[str, Any]
    # the checkpoints the weights started from, parent first (empty: from scratch)
    lineage: list[dict[str, str]]
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def train(records: Sequence[StudyRecord], config: TrainConfig) -> Path:
    """Train on the train split of ``records`` and return the checkpoint path (``config.out_dir/model.pt``).

    A run whose ``train_state.pt`` exists resumes from it (``config.resume``) and ends with the same weights as an
    uninterrupted run; a state written with other settings is refused. ``config.init`` starts from a checkpoint's
    weights (fine-tuning) and records it as the new checkpoint's lineage.
    """
    if config.variant not in VARIANTS:
        raise ValueError(f"unknown variant {config.variant!r}; expected one of {VARIANTS}")
    config.out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(config.device)
    data = _data(records, config)
    run = _setup(config, data, dev)
    state_path = config.out_dir / STATE_FILE
    if config.resume and state_path.is_file():
        run.step, run.history = _load_state(state_path, run)
        log.info("resuming %s at step %d of %d", config.out_dir, run.step, data.total_steps)
    _epochs(run, data, config, dev)
    return _finish(run, data, config)


def _data(records: Sequence[StudyRecord], config: TrainConfig) -> _Data:
    splits = split_records(records, config.holdout_site)
    train_set = StudyClipDataset(usable_records(splits["train"], require_caption=True))
    val_set = StudyClipDataset(usable_records(splits["val"], require_caption=True))
    if len(train_set) < 2:
        raise ValueError(f"{len(train_set)} usable training studies; contrastive training needs at least 2")
    batch_size = min(config.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    return _Data(train_set, val_set, batch_size, steps_per_epoch, config.epochs * steps_per_epoch)


def _setup(config: TrainConfig, data: _Data, dev: torch.device) -> _Run:
    """The model (random, or the ``init`` checkpoint's weights), optimiser, schedule and the run's identity."""
    torch.manual_seed(config.seed)
    overrides = dict(config.model_overrides or {})
    overrides["video"] = {**overrides.get("video", {}), "variant": config.variant}
    model = create_model(config.config_name, **overrides)
    lineage = _init_from(config.init, model) if config.init is not None else []
    model = model.to(dev)
    run_args = {
        **config.settings(),
        "batch_size": data.batch_size,
        "train_studies": sorted(r.study_uid for r in data.train.records),
        # the resolved architecture, so a run never resumes into a model whose config file has changed since
        "model_config": model.config.to_dict(),
        # the parent's identity, so a run never resumes on top of other starting weights
        "init_hash": lineage[0]["hash"] if lineage else None,
    }
    optimizer = _optimizer(model, config.lr, config.weight_decay)
    warmup = max(1, int(config.warmup_fraction * data.total_steps))
    total = data.total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_cosine(s, warmup, total))
    return _Run(model, optimizer, scheduler, run_args, lineage)


def _init_from(path: Path, model: CMRClip) -> list[dict[str, str]]:
    """Load the weights of checkpoint ``path`` into ``model``; its lineage. A model of another shape is refused."""
    if not path.is_file():
        raise ValueError(f"--init checkpoint {path} does not exist")
    meta = read_checkpoint_meta(path)  # compared before building it: another text tower may not even load here
    differences = _config_differences(meta.config.to_dict(), model.config.to_dict())
    if differences:
        raise ValueError(
            f"cannot start from {path}: its model differs from the one configured ({'; '.join(differences[:4])}); "
            f"train with the config it was made with (`--config {meta.training.get('config_name', '?')}`)"
        )
    parent, meta = load_checkpoint(path)
    model.load_state_dict(parent.state_dict())
    return lineage_of(path, meta)


def _config_differences(parent: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[str]:
    """One phrase per model config field that differs, but the variant (it only picks a model's inputs)."""
    out = []
    for key in sorted(set(parent) | set(ours)):
        name = f"{prefix}{key}"
        a, b = parent.get(key), ours.get(key)
        if name == "video.variant":
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name} {a} in the checkpoint, {b} configured")
    return out


def _epochs(run: _Run, data: _Data, config: TrainConfig, dev: torch.device) -> None:
    """Optimiser steps from ``run.step`` to the end (or ``max_steps``), validating after every epoch."""
    aug = replace(config.augment, temporal_roll=config.augment.temporal_roll and config.variant != "static")
    captioner = CaptionSampler(impression_prob=config.impression_prob)
    loss_fn = ClipLoss()
    stop = data.total_steps if config.max_steps is None else min(data.total_steps, config.max_steps)
    bar = tqdm(total=data.total_steps, initial=run.step, disable=not config.progress,
               desc=f"train {config.config_name}/{config.variant}")
    samples, started = 0, time.perf_counter()
    state_path = config.out_dir / STATE_FILE
    while run.step < stop:
        epoch, first = divmod(run.step, data.steps_per_epoch)
        run.model.train()
        for indices in _epoch_batches(len(data.train), data.batch_size, config.seed, epoch, first):
            generator = _seed_step(config.seed, run.step)
            batch, captions = _training_batch(data.train, indices, captioner, aug, generator)
            loss_value = _step(run, batch_to(batch, dev), captions, loss_fn, config.grad_clip, dev,
                               config.laterality_negatives)
            samples += len(captions)
            rate = samples / (time.perf_counter() - started)
            lr_now = run.optimizer.param_groups[0]["lr"]
            run.history.append({"step": run.step, "loss": loss_value, "lr": lr_now, "samples_per_s": rate})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr_now:.2e}", sps=f"{rate:.1f}")
            if run.step % data.steps_per_epoch == 0:
                _end_of_epoch(run, data, config, loss_fn, dev, rate)
            if run.step % config.save_every == 0 or run.step == stop:
                _save_state(state_path, run)
            if run.step >= stop:
                break
    bar.close()
    if samples:
        log.info("trained %d steps, %.1f samples/s", run.step, samples / (time.perf_counter() - started))


def _training_batch(
    dataset: StudyClipDataset, indices: list[int], captioner: CaptionSampler, aug: AugmentConfig,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """One step's augmented batch and sampled captions: a function of the indices and the generator's seed."""
    records = [dataset.records[i] for i in indices]
    captions = [captioner(r.caption or "", r.findings, generator) for r in records]
    batch = augment_batch(collate_studies([dataset.clips(i) for i in indices]), aug, generator)
    return batch, captions


def _step(
    run: _Run, batch: dict[str, torch.Tensor], captions: list[str], loss_fn: ClipLoss, grad_clip: float,
    dev: torch.device, laterality_negatives: bool,
) -> float:
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        out = run.model(batch, captions)
        twins = [t for t in map(swap_laterality, captions) if t is not None] if laterality_negatives else []
        negatives = run.model.encode_texts(twins) if twins else None
        loss = clip_loss_with_negatives(loss_fn, out["image_features"], out["text_features"], negatives,
                                        out["logit_scale"])
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.model.clamp_logit_scale()
    run.step += 1
    return loss.item()


def _end_of_epoch(
    run: _Run, data: _Data, config: TrainConfig, loss_fn: ClipLoss, dev: torch.device, rate: float
) -> None:
    if len(data.val) >= 2:
        run.history[-1]["val_loss"] = _validation_loss(run.model, data.val, data.batch_size, loss_fn, dev)
        run.model.train()
    log.info("epoch %d/%d: loss %.3f, val loss %.3f, %.1f samples/s", run.step // data.steps_per_epoch,
             config.epochs, run.history[-1]["loss"], run.history[-1].get("val_loss", float("nan")), rate)


def _finish(run: _Run, data: _Data, config: TrainConfig) -> Path:
    """Save the final state, history, loss curve and the checkpoint (with its training settings and lineage)."""
    _save_state(config.out_dir / STATE_FILE, run)
    (config.out_dir / HISTORY_FILE).write_text(json.dumps(run.history))
    plot_loss_curve(run.history, config.out_dir / LOSS_CURVE_FILE)
    training = {k: v for k, v in run.run_args.items() if k not in ("train_studies", "model_config", "init_hash")}
    training.update(steps=run.step, total_steps=data.total_steps, train_size=len(data.train))
    path = config.out_dir / CHECKPOINT_FILE
    meta = save_checkpoint(run.model, path, config.preprocess_version, training=training, lineage=run.lineage)
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


def _save_state(path: Path, run: _Run) -> None:
    state = {
        "run_args": run.run_args, "step": run.step, "history": run.history, "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(path: Path, run: _Run) -> tuple[int, list[dict[str, float]]]:
    """Restore ``run`` from a saved state; a state saved with other settings is refused."""
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file, written by _save_state
    saved, ours = state["run_args"], run.run_args
    if saved != ours:
        changed = sorted(k for k in set(ours) | set(saved) if saved.get(k) != ours.get(k))
        raise ValueError(
            f"{path} belongs to a run with other settings ({', '.join(changed)}); "
            "start over (`cmr train --restart`, TrainConfig(resume=False)) or use another out_dir"
        )
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return state["step"], state["history"]
