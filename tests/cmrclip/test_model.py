from __future__ import annotations

import torch

from cmrclip.batch import collate_studies
from cmrclip.factory import create_model, list_models
from tests.cmrclip.conftest import TINY


def _check_embeddings(x: torch.Tensor, batch: int, dim: int) -> None:
    assert x.shape == (batch, dim)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(batch))


def test_registry_lists_both_sizes():
    assert {"cpu-small", "paper-vitb16"} <= set(list_models())


def test_towers_share_the_embedding_width_and_handle_missing_views(study_factory):
    model = create_model("cpu-small", **TINY).eval()
    mixed = [
        study_factory(),
        study_factory(views=("4ch",)),
        study_factory(views=("lge_lax",)),
        study_factory(views=("sax", "lge_sax")),
        study_factory(views=()),
    ]
    with torch.no_grad():
        studies = model.encode_studies(collate_studies(mixed))
        single = model.encode_studies(collate_studies([mixed[1]]))
        texts = model.encode_texts(["dilated left ventricle", "no LGE"])
    _check_embeddings(studies, 5, 64)
    _check_embeddings(texts, 2, 64)
    # A study's embedding does not depend on what else is in the batch (eval mode, masked views).
    torch.testing.assert_close(single[0], studies[1], atol=1e-5, rtol=1e-4)


def test_missing_view_content_is_ignored(study_factory):
    """Whatever sits in a masked (absent) view's zero-filled slot must not change the embedding."""
    model = create_model("cpu-small", **TINY).eval()
    batch = collate_studies([study_factory(views=("4ch", "lge_sax"))])
    noisy = dict(batch, sax=torch.rand_like(batch["sax"]), lge_lax=torch.rand_like(batch["lge_lax"]))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_studies(batch), model.encode_studies(noisy))


def test_variants_run(study_factory):
    batch = collate_studies([study_factory(), study_factory(views=("2ch",))])
    for variant in ("static", "single_view"):
        model = create_model("cpu-small", video={**TINY["video"], "variant": variant}, embed_dim=64).eval()
        with torch.no_grad():
            _check_embeddings(model.encode_studies(batch), 2, 64)


def test_text_padding_follows_the_batch():
    model = create_model("cpu-small", **TINY)
    assert model.tokenizer(["lv dilated"]).shape[1] < 10
    assert model.tokenizer(["word " * 500]).shape[1] == 128


def test_paper_vitb16_builds_and_runs(study_factory):
    model = create_model("paper-vitb16", video={"image_size": 32}).eval()
    vit = model.visual.view_encoder
    assert len(vit.blocks) == 12 and vit.cls_token.shape[-1] == 768
    assert torch.count_nonzero(vit.time_embed) == 0
    with torch.no_grad():
        out = model.encode_studies(collate_studies([study_factory(views=("4ch", "lge_lax"))]))
    _check_embeddings(out, 1, 512)


def test_forward_feeds_clip_loss(study_factory):
    from open_clip.loss import ClipLoss

    model = create_model("cpu-small", **TINY)
    out = model(collate_studies([study_factory(), study_factory(dilated=True)]), ["normal", "dilated lv"])
    assert set(out) == {"image_features", "text_features", "logit_scale"}
    assert torch.isfinite(ClipLoss()(**out))
