"""Which checkpoint the engine (and ``cmr index``) uses."""

from __future__ import annotations

from pathlib import Path

from catalog.settings import Settings

TRAIN_STATE_FILE = "train_state.pt"


def resolve_checkpoint(settings: Settings, explicit: Path | None = None) -> Path:
    """``explicit``, else ``settings.checkpoint``, else the newest ``*.pt`` under ``settings.checkpoint_dir``."""
    if explicit is not None or settings.checkpoint:
        path = Path(explicit or settings.checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    found = [p for p in settings.checkpoint_dir.rglob("*.pt") if p.name != TRAIN_STATE_FILE]
    if not found:
        raise FileNotFoundError(f"no checkpoint under {settings.checkpoint_dir}: run `cmr train` first")
    return max(found, key=lambda p: p.stat().st_mtime)
