from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cmrclip.batch import collate_studies
from cmrclip.clips import MODEL_VIEWS
from cmrclip.train.augment import ARTEFACTS, AugmentConfig, _artefacts, _short_cines, augment_batch
from cmrclip.train.loop import _seed_step


@pytest.fixture
def batch(study_factory):
    return collate_studies([study_factory(), study_factory(dilated=True, views=("sax", "4ch", "lge_lax"))])


def test_same_seed_and_step_give_the_same_batch_whatever_the_global_rng(batch):
    cfg = AugmentConfig(artefact_prob=0.5)
    first = augment_batch(batch, cfg, _seed_step(3, 7))
    torch.manual_seed(12345)  # TorchIO draws from the global RNG: each series' draw must be seeded from the step
    np.random.seed(6789)
    again = augment_batch(batch, cfg, torch.Generator().manual_seed((3 * 1_000_003 + 7) % 2**63))
    other = augment_batch(batch, cfg, _seed_step(3, 8))
    for view in ("sax", "4ch", "lge_sax"):
        assert torch.equal(first[view], again[view])
        assert not torch.equal(first[view], other[view])


def test_every_artefact_changes_a_cine_or_still_and_keeps_its_shape():
    torch.manual_seed(0)
    cine, still = torch.rand(1, 16, 64, 64) * 0.8, torch.rand(1, 1, 64, 64) * 0.8
    for name, on_cines in ARTEFACTS.items():
        cfg = AugmentConfig(artefact_prob=1.0, artefact_weights={name: 1.0})
        for items, is_cine in ((cine, True), (still, False)):
            out = _artefacts(items, torch.tensor([True]), is_cine, cfg, torch.Generator().manual_seed(1))
            assert out.shape == items.shape and torch.isfinite(out).all()
            if is_cine and not on_cines:
                assert torch.equal(out, items), name  # too slow per cine: stills only
            else:
                assert not torch.allclose(out, items), name


def test_missing_series_get_no_artefact():
    items = torch.rand(4, 1, 64, 64)
    present = torch.tensor([True, False, True, False])
    out = _artefacts(items, present, False, AugmentConfig(artefact_prob=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(out[~present], items[~present]) and not torch.equal(out[present], items[present])


def test_disabled_augmentation_passes_the_batch_through(batch):
    out = augment_batch(batch, AugmentConfig(enabled=False), torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], batch[k]) for k in batch)


def test_static_variant_never_rolls_frames(batch):
    cfg = AugmentConfig(temporal_roll=False, artefact_prob=0.0, max_rotation_deg=0, scale=(1, 1), max_shift=0,
                        elastic=0, gamma=(1, 1), intensity=(1, 1), noise_std=0, short_cine_prob=0, sax_only_prob=0)
    out = augment_batch(batch, cfg, torch.Generator().manual_seed(0))
    # identity settings (intensities are clamped at 0 before gamma): frame 0 stays end-diastole
    assert torch.allclose(out["4ch"], batch["4ch"].clamp(min=0), atol=1e-5)
    # short cines keep end-diastole too
    short = augment_batch(batch, dataclasses.replace(cfg, short_cine_prob=1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(short["4ch"][:, 0], batch["4ch"][:, 0].clamp(min=0), atol=1e-5)
    assert not torch.allclose(short["4ch"], out["4ch"])


def test_short_cines_are_what_ingest_makes_of_a_k_phase_cine():
    """A cut cine equals ingest's own resampling of a k-phase series (k = 2..4 evenly spaced frames)."""
    from indexer.clips.preprocess import _resample_time

    t = 16
    cine = torch.rand(6, t, 4, 4, generator=torch.Generator().manual_seed(1))
    out = _short_cines(cine, 1.0, torch.Generator().manual_seed(0))
    seen = set()
    for got, full in zip(out.numpy(), cine.numpy(), strict=True):
        ingest = {k: _resample_time(full[(np.arange(k) * t) // k], t) for k in (2, 3, 4)}
        matches = [k for k, expected in ingest.items() if np.allclose(got, expected, atol=1e-5)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1  # k is drawn per series
    untouched = _short_cines(cine, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(untouched, cine)


def test_sax_only_studies_keep_their_stack_and_lose_the_other_views(batch):
    cfg = AugmentConfig(sax_only_prob=1.0, artefact_prob=0.0)
    out = augment_batch(batch, cfg, torch.Generator().manual_seed(0))
    sax = MODEL_VIEWS.index("sax")
    assert out["present"][:, sax].all() and out["present"].sum() == len(batch["present"])
    assert batch["present"].sum() > len(batch["present"])  # the input is untouched
    none = augment_batch(batch, AugmentConfig(sax_only_prob=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(none["present"], batch["present"])


def test_a_config_recorded_before_the_archive_augmentations_is_read_without_them():
    """Baselines and resumed runs of an older checkpoint are trained as it was: without short cines or SAX-only."""
    recorded = AugmentConfig().to_dict()
    old = {k: v for k, v in recorded.items() if k not in ("short_cine_prob", "sax_only_prob")}
    assert AugmentConfig.from_dict(old).short_cine_prob == 0.0 and AugmentConfig.from_dict(old).sax_only_prob == 0.0
    assert AugmentConfig.from_dict(recorded) == AugmentConfig()
