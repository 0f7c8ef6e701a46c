"""One small archive shared by the phantom tests (7 studies, all sites, one fault of every kind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantom.archive import SynthSummary, synthesize


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("phantom_archive")
    summary = synthesize(out, 7, seed=11, fault_rate=1.0, progress=False)
    return out, summary
