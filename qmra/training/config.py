"""The training recipe: every setting of ``qmra train``, checked, and its learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qmra.errors import QmraError
from qmra.options import option
from qmra.training.encoders import FROZEN_PARTS


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. Fields with :func:`qmra.options.option` metadata are ``qmra train``'s flags."""

    steps: int = field(default=1000, metadata=option("optimizer steps", metavar="N"))
    batch_size: int = field(default=16, metadata=option("clips per step (the paper: 16)", metavar="B"))
    accumulate: int = field(default=1, metadata=option("micro-batches per step (effective batch = B × this)", metavar="N"))
    size: int = field(default=384, metadata=option("training frames are SIZE×SIZE (multiple of 16)", metavar="PIXELS"))
    lr: float = field(default=1e-5, metadata=option("Adam's learning rate (the paper: 1e-5)"))
    lr_schedule: str = field(default="constant", metadata=option(
        "constant (the paper) or cosine", choices=("constant", "cosine")))
    warmup: int = field(default=0, metadata=option("linear warm-up steps", metavar="N"))
    #: ImageNet features would be overwritten by the gradients meant for the new layers at their rate.
    backbone_lr: float | None = field(default=None, metadata=option(
        "the encoders' learning rate as a fraction of --lr", metavar="FRACTION", parse=float,
        default_text="0.1 with --backbone-weights, else 1"))
    frozen_backbone: str = field(default="none", metadata=option(
        "encoder parameters kept fixed: none, early (stem and the stages to stride 8) or all (only the box map's "
        "filter learns)", choices=FROZEN_PARTS))
    dice_weight: float = 0.1
    #: The shipped weights learned from tight boxes only, and a box 10 % loose a side costs them 2.4
    #: validation points (docs/results-history.md).
    loose_boxes: float = field(default=0.0, metadata=option(
        "draw each clip's memory-frame boxes loose, as people draw boxes: each side moved by a random share of the box "
        "from SHARE/4 inwards to SHARE outwards (0: tight boxes, as the paper)", metavar="SHARE"))
    #: Weights trained on colour alone lost 30 points of validation J&F on the same videos in greyscale
    #: (78.8 → 48.7: docs/results-history.md), which infrared night cameras and microscopes record.
    grey_clips: float = field(default=0.1, metadata=option(
        "share of training clips made greyscale (every frame of the clip), so that the network follows objects in "
        "greyscale video too (0: colour only, as the paper)", metavar="SHARE"))
    #: Real validation videos blurred by 2 pixels scored 51.4 against 78.5 sharp: one of the three was
    #: lost from its second frame (docs/results-history.md); not the default until a run measures it.
    blur_clips: float = field(default=0.0, metadata=option(
        "share of training clips blurred (every frame of the clip alike, a Gaussian of 0.5 to 2.5 pixels), so that the "
        "network follows objects in soft or scaled-up video too (0: none, as the paper)", metavar="SHARE"))
    #: The paper is silent on how the prior is formed in training; from scratch the stage-1
    #: prediction is noise for a long time, so half the steps use the true box.
    teacher_forcing: float = field(default=0.5, metadata=option(
        "probability of giving stage 2 the true box instead of stage 1's", metavar="P"))
    val_every: int = field(default=500, metadata=option("steps between validations", metavar="N"))
    save_every: int = field(default=100, metadata=option("steps between checkpoints", metavar="N"))
    #: ``last`` is overwritten at every save; choosing a checkpoint on validation needs the earlier ones.
    keep_every: int = field(default=0, metadata=option(
        "also keep the weights of every N-th step as step-N.safetensors, to choose among on validation (0: none)",
        metavar="N"))
    seed: int = field(default=0, metadata=option("random seed"))
    #: A 384-px clip costs a core about 35 ms to make, so a GPU step of batch 16 waits for its clips
    #: unless many workers make them (docs/training.md).
    workers: int | None = field(default=None, metadata=option(
        "DataLoader worker processes", metavar="N", parse=int,
        default_text="on a GPU, the CPU cores but 2, shared by this machine's GPUs; on a CPU, 1 (training needs its cores)"))
    bf16: bool = field(default=True, metadata=option("no bf16 autocast on CUDA"))  # autocast on CUDA only
    #: Gaps of at most 5 frames teach stage 1 that an object is near where it was; an object that
    #: moves fast, or is hidden and comes back elsewhere, is then not found (docs/results-history.md).
    max_gap: int = field(default=5, metadata=option(
        "video clips: at most this many frames between consecutive frames of a clip (the paper: 5; STM's curriculum "
        "grows it to 25): larger gaps teach the network to look farther for an object that moved or came back", metavar="N"))
    val_resolution: int | None = field(default=None, metadata=option(
        "validate with frames scaled to this short side", metavar="PIXELS", parse=int, default_text="their own size"))
    bn_calibration_videos: int = field(default=8, metadata=option(
        "with --train-batchnorm: re-estimate BatchNorm statistics on N whole training videos before each validation "
        "and checkpoint (0: never)", metavar="N"))
    bn_calibration_frames: int = 8
    time_budget: float | None = field(default=None, metadata=option(
        "end training after this many seconds (validation and saving not counted); a cosine schedule then decays "
        "over the budget (a resumed run continues on the steps already taken)", metavar="SECONDS", parse=float))

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "accumulate", "size", "val_every", "save_every", "max_gap"):
            if getattr(self, name) < 1:
                raise QmraError(f"{name.replace('_', '-')} must be at least 1")
        for name in ("bn_calibration_videos", "bn_calibration_frames", "keep_every"):
            if getattr(self, name) < 0:
                raise QmraError(f"{name.replace('_', '-')} must be at least 0")
        if self.val_resolution is not None and self.val_resolution < 32:
            raise QmraError(f"--val-resolution must be at least 32 pixels, got {self.val_resolution}")
        if self.size % 16:
            raise QmraError(f"--size must be a multiple of 16, got {self.size}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise QmraError(f"--time-budget must be a positive number of seconds, got {self.time_budget}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise QmraError(f"unknown learning-rate schedule {self.lr_schedule!r}; use constant or cosine")
        if self.backbone_lr is not None and not 0 < self.backbone_lr <= 10:
            raise QmraError(f"--backbone-lr must be a fraction in (0, 10], got {self.backbone_lr}")
        if self.frozen_backbone not in FROZEN_PARTS:
            raise QmraError(f"unknown --frozen-backbone {self.frozen_backbone!r}; use one of {', '.join(FROZEN_PARTS)}")
        if not 0 <= self.teacher_forcing <= 1:
            raise QmraError("teacher forcing is a probability in [0, 1]")
        if not 0 <= self.loose_boxes <= 1:
            raise QmraError(f"--loose-boxes must be a share of the box's side, 0 to 1, got {self.loose_boxes}")
        for flag, share in (("--grey-clips", self.grey_clips), ("--blur-clips", self.blur_clips)):
            if not 0 <= share <= 1:
                raise QmraError(f"{flag} must be a share of the clips, 0 to 1, got {share}")

    def learning_rate(self, step: int, elapsed: float = 0.0) -> float:
        """The learning rate of ``step``; with a time budget the schedule's progress is the larger of
        the steps' and the time's (``elapsed`` seconds of training)."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.lr_schedule == "cosine":
            progress = (step - self.warmup) / max(1, self.steps - self.warmup)
            if self.time_budget is not None:
                progress = max(progress, elapsed / self.time_budget)
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.lr
