"""``TrainConfig``: everything one training run is given, as one typed object.

``cmr train``, ``cmr eval``'s baselines, the tests and the benches build this object instead of repeating a
parameter list. Most fields decide the weights a run ends with; the ones listed in ``RUN_CONTROL`` only say where
and how the run executes, so a run resumed with other values of them still ends with the same weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmrclip.factory import DEFAULT_MODEL
from cmrclip.train.augment import AugmentConfig

# Fields that do not change the result: a resumed run may differ in these and still continue.
RUN_CONTROL = ("out_dir", "device", "resume", "progress", "save_every", "max_steps")


@dataclass
class TrainConfig:
    # folder of the run: train_state.pt while it runs, then model.pt, history.json and loss_curve.png
    out_dir: Path
    # model config name (cmrclip/model_configs)
    config_name: str = DEFAULT_MODEL
    # "full" (all views, all frames), "static" (end-diastolic frame only) or "single_view" (4CH only)
    variant: str = "full"
    # passes over the training split; the learning-rate schedule always spans all of them
    epochs: int = 30
    # studies per step (clamped to the training split's size)
    batch_size: int = 16
    # peak learning rate (AdamW, linear warm-up then cosine); the text transformer gets lr * text.lr_scale
    lr: float = 5e-4
    # seeds the model's initialisation, the epoch shuffles and every step's augmentation and dropout
    seed: int = 0
    # institution kept out of training and validation, for external validation
    holdout_site: str | None = None
    # preprocessing version of the clips, written into the checkpoint
    preprocess_version: str = "unknown"
    # AdamW weight decay (not on gains, biases or the logit scale)
    weight_decay: float = 0.05
    # share of the steps spent warming the learning rate up
    warmup_fraction: float = 0.05
    # gradient norm clip
    grad_clip: float = 1.0
    # share of steps captioned by the impression; the rest by sentences drawn from the whole report
    impression_prob: float = 0.5
    # add each caption's left/right-swapped twin as a negative text (cmrclip.train.negatives)
    laterality_negatives: bool = True
    # nested overrides of the named model config (as ``create_model(name, **overrides)`` takes them)
    model_overrides: dict[str, Any] | None = None
    # train-time augmentation (never applied in validation or evaluation)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # checkpoint whose weights the run starts from (fine-tuning); None: random video tower, pretrained text tower
    init: Path | None = None
    # "auto", "cpu" or "cuda[:n]"
    device: str = "auto"
    # continue from out_dir's train_state.pt when it exists (a state of other settings is refused)
    resume: bool = True
    # show a progress bar
    progress: bool = True
    # steps between two writes of train_state.pt
    save_every: int = 50
    # stop after this many steps in total (a later run with a larger or no limit resumes); None: all epochs
    max_steps: int | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.init = Path(self.init) if self.init is not None else None
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig.from_dict(self.augment)

    def settings(self) -> dict[str, Any]:
        """The fields that decide the weights (all but ``RUN_CONTROL``), as plain data for state and checkpoint."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in RUN_CONTROL}
        out["augment"] = self.augment.to_dict()
        out["init"] = str(self.init) if self.init is not None else None
        return out

    @classmethod
    def from_training(cls, training: dict[str, Any], **changes: Any) -> TrainConfig:
        """The config a checkpoint's ``training`` metadata describes, with ``changes`` applied.

        Checkpoints written before a field existed get the value that reproduces how they were trained
        (``impression_prob`` 1.0: impressions only; no laterality negatives).
        """
        names = {f.name for f in dataclasses.fields(cls)} - set(RUN_CONTROL)
        known = {k: v for k, v in training.items() if k in names}
        known.setdefault("impression_prob", 1.0)
        known.setdefault("laterality_negatives", False)
        return cls(**{**known, **changes})
