"""Registry of named model configs (``model_configs/*.json``) and the model builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cmrclip.config import ModelConfig, merge_overrides
from cmrclip.model import CMRClip

DEFAULT_MODEL = "cpu-small"
_CONFIG_DIR = Path(__file__).parent / "model_configs"
_MODEL_CONFIGS: dict[str, dict[str, Any]] = {}


def add_model_config(path: Path) -> None:
    """Register a JSON config file, or every ``*.json`` in a folder, under its file stem."""
    path = Path(path)
    for file in sorted(path.glob("*.json")) if path.is_dir() else [path]:
        _MODEL_CONFIGS[file.stem] = json.loads(file.read_text())


def list_models() -> list[str]:
    return sorted(_MODEL_CONFIGS)


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The named config with ``overrides`` deep-merged (e.g. ``video={"variant": "static"}``)."""
    if name not in _MODEL_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(list_models())}")
    return ModelConfig.from_dict(merge_overrides(_MODEL_CONFIGS[name], overrides))


def create_model(name: str = DEFAULT_MODEL, pretrained_text: bool = True, **overrides: Any) -> CMRClip:
    return CMRClip(get_model_config(name, **overrides), pretrained_text=pretrained_text)


add_model_config(_CONFIG_DIR)
