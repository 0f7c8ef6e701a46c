"""Which checkpoint the engine (and ``cmr index``) uses."""

from __future__ import annotations

from pathlib import Path

from catalog.settings import Settings


def resolve_checkpoint(settings: Settings, explicit: Path | None = None) -> Path:
    """``explicit``, else ``settings.checkpoint``, else the checkpoint ``cmr train`` marked active.

    Baselines trained for evaluation (static, single-view) are never picked up by accident: only a checkpoint
    named explicitly or marked active serves searches.
    """
    path = Path(explicit) if explicit is not None else settings.active_checkpoint()
    if path is None:
        raise FileNotFoundError(f"no active checkpoint under {settings.checkpoint_dir}: run `cmr train` first")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: run `cmr train` first")
    return path
