from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from open_clip.loss import ClipLoss

from cmrclip.batch import collate_studies
from cmrclip.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from cmrclip.factory import create_model
from cmrclip.train import loop
from cmrclip.train.augment import AugmentConfig
from cmrclip.train.config import TrainConfig
from cmrclip.train.loop import CHECKPOINT_FILE, HISTORY_FILE, LOSS_CURVE_FILE, STATE_FILE, train
from tests.cmrclip.conftest import TINY

# Artefacts on a third of the series, so the TorchIO path runs in every step of these runs.
AUGMENT = AugmentConfig(artefact_prob=0.3)


def test_loss_decreases_on_a_fixed_batch(study_factory):
    torch.manual_seed(0)
    model = create_model("cpu-small", **TINY)
    kinds = [{}, {"dilated": True}, {"reduced_function": True}, {"lge": True}]
    batch = collate_studies([study_factory(**k) for k in kinds])
    texts = ["normal study", "dilated left ventricle", "reduced systolic function", "late enhancement present"]
    loss_fn, optimizer = ClipLoss(), torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(**model(batch, texts))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_logit_scale()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _config(out, **changes) -> TrainConfig:
    base = TrainConfig(out, epochs=2, batch_size=4, seed=3, progress=False, preprocess_version="test-v1",
                       model_overrides=TINY, save_every=1, augment=AUGMENT)
    return replace(base, **changes)


def _run(records, out, **changes):
    return train(records, _config(out, **changes))


@pytest.fixture(scope="module")
def uninterrupted(archive, tmp_path_factory):
    return _run(archive[0], tmp_path_factory.mktemp("full"))


def test_train_writes_checkpoint_curve_and_history(uninterrupted):
    out = uninterrupted.parent
    assert uninterrupted.name == CHECKPOINT_FILE
    assert (out / LOSS_CURVE_FILE).stat().st_size > 0 and (out / STATE_FILE).is_file()
    history = json.loads((out / HISTORY_FILE).read_text())
    assert [h["step"] for h in history] == list(range(1, len(history) + 1))
    _, meta = load_checkpoint(uninterrupted)
    assert meta.preprocess_version == "test-v1" and meta.training["variant"] == "full"
    assert meta.training["steps"] == meta.training["total_steps"] == len(history)
    assert meta.training["augment"] == AUGMENT.to_dict() and meta.lineage == []


def test_resume_after_kill_continues_and_matches(archive, uninterrupted, tmp_path):
    _run(archive[0], tmp_path, max_steps=3)  # "killed" after step 3, inside the second epoch
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert len(history) == 3
    resumed = _run(archive[0], tmp_path)
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert [h["step"] for h in history] == list(range(1, len(history) + 1)) and len(history) > 3
    _, meta_resumed = load_checkpoint(resumed)
    _, meta_full = load_checkpoint(uninterrupted)
    assert meta_resumed.hash == meta_full.hash  # seeded per step, augmentation too: the weights of an unkilled run


def test_resume_refuses_other_settings(archive, uninterrupted):
    with pytest.raises(ValueError, match="other settings"):
        _run(archive[0], uninterrupted.parent, lr=1e-2)
    with pytest.raises(ValueError, match=r"other settings \(augment\)"):
        _run(archive[0], uninterrupted.parent, augment=AugmentConfig(artefact_prob=0.5))


def test_augmentation_runs_in_training_steps_only(archive, tmp_path, monkeypatch):
    calls = []
    real = loop.augment_batch
    monkeypatch.setattr(loop, "augment_batch", lambda b, cfg, g: calls.append(cfg) or real(b, cfg, g))
    checkpoint = _run(archive[0], tmp_path, epochs=1)
    steps = read_checkpoint_meta(checkpoint).training["steps"]
    assert len(calls) == steps  # once per optimiser step; the validation loss after the epoch saw clean clips
    assert all(cfg == AUGMENT for cfg in calls)


def test_training_config_round_trips_through_the_checkpoint(uninterrupted, tmp_path):
    meta = read_checkpoint_meta(uninterrupted)
    again = TrainConfig.from_training(meta.training, out_dir=tmp_path)
    expected = {**_config(tmp_path).settings(), "batch_size": meta.training["batch_size"]}
    assert again.settings() == expected  # `cmr eval` builds its baselines this way


def test_init_loads_the_parent_and_records_lineage(archive, uninterrupted, tmp_path):
    parent = read_checkpoint_meta(uninterrupted)
    same = _run(archive[0], tmp_path / "child", init=uninterrupted, max_steps=0)  # no step: the parent's weights
    child = read_checkpoint_meta(same)
    assert child.hash == parent.hash
    assert child.lineage == [{"hash": parent.hash, "path": str(uninterrupted.resolve())}]
    tuned = read_checkpoint_meta(_run(archive[0], tmp_path / "tuned", init=same, epochs=1))
    assert tuned.hash != parent.hash and tuned.training["init"] == str(same)
    assert [a["hash"] for a in tuned.lineage] == [parent.hash, parent.hash]  # child (same weights), then grandparent
    with pytest.raises(ValueError, match="other settings"):  # a run never resumes on another parent
        _run(archive[0], tmp_path / "tuned", init=uninterrupted, epochs=1)


def test_init_refuses_an_incompatible_checkpoint(archive, uninterrupted, tmp_path):
    wider = {**TINY, "embed_dim": 32}
    refusal = r"cannot start from .*embed_dim 64 in the checkpoint, 32 configured.*--config cpu-small"
    with pytest.raises(ValueError, match=refusal):
        _run(archive[0], tmp_path / "a", init=uninterrupted, model_overrides=wider)
    model, meta = load_checkpoint(uninterrupted)
    model.config.text.model_dir = "/models/Bio_ClinicalBERT"  # another text tower
    other = tmp_path / "bert.pt"
    save_checkpoint(model, other, "test-v1", training=meta.training)
    refusal = "text.model_dir /models/Bio_ClinicalBERT in the checkpoint, None configured"
    with pytest.raises(ValueError, match=refusal) as error:
        _run(archive[0], tmp_path / "b", init=other)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="does not exist"):
        _run(archive[0], tmp_path / "c", init=tmp_path / "missing.pt")
