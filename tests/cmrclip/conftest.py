from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tests.cmrclip.synthetic import make_archive, make_study  # noqa: E402

torch.set_num_threads(2)

# A few thousand video parameters: enough to learn the synthetic rings, fast on 2 cores.
TINY = {"embed_dim": 64, "video": {"width": 32, "cnn": {"channels": [8, 16, 32]}, "fusion": {"heads": 2}}}


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory):
    """24 synthetic studies on two sites; returns (records, labels by UID)."""
    return make_archive(tmp_path_factory.mktemp("archive"), 24, seed=0, sites=("site_a", "site_b"))


@pytest.fixture
def study_factory():
    rng = np.random.default_rng(1)

    def make(views=("sax", "2ch", "3ch", "4ch", "lge_sax", "lge_lax"), **labels):
        full = {"dilated": False, "reduced_function": False, "lge": False, **labels}
        return make_study(rng, full, views).views

    return make
