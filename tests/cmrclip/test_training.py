from __future__ import annotations

import json

import pytest
import torch
from open_clip.loss import ClipLoss

from cmrclip.batch import collate_studies
from cmrclip.checkpoint import load_checkpoint
from cmrclip.factory import create_model
from cmrclip.train import CHECKPOINT_FILE, HISTORY_FILE, LOSS_CURVE_FILE, STATE_FILE, train
from tests.cmrclip.conftest import TINY


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


def _run(records, out, **kwargs):
    args = dict(epochs=2, batch_size=4, seed=3, progress=False, preprocess_version="test-v1",
                model_overrides=TINY, save_every=1)
    return train(records, out, **{**args, **kwargs})


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


def test_resume_after_kill_continues_and_matches(archive, uninterrupted, tmp_path):
    _run(archive[0], tmp_path, max_steps=3)  # "killed" after step 3
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert len(history) == 3
    resumed = _run(archive[0], tmp_path)
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert [h["step"] for h in history] == list(range(1, len(history) + 1)) and len(history) > 3
    _, meta_resumed = load_checkpoint(resumed)
    _, meta_full = load_checkpoint(uninterrupted)
    assert meta_resumed.hash == meta_full.hash  # seeded per step: the same weights as without the kill


def test_resume_refuses_other_settings(archive, uninterrupted):
    with pytest.raises(ValueError, match="other settings"):
        _run(archive[0], uninterrupted.parent, lr=1e-2)
