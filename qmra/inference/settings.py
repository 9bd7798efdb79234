"""Inference settings."""

from __future__ import annotations

from dataclasses import dataclass

from qmra.errors import ConfigError
from qmra.model.qma import ATTENTION_KERNELS


@dataclass(frozen=True)
class InferenceSettings:
    """How a video is propagated.

    - ``mem_every``: besides the object's first frame and the previous frame, every N-th frame since
      the first joins the memory (the paper: 10 on DAVIS, 5 on YouTube-VOS). 0 = no extra frames
      (the paper's ``w/o EF``).
    - ``max_memory_frames``: the cap on stored frames per object, first and previous included. The
      first frame always stays; the oldest extra frame goes first. 16 leaves DAVIS-length videos
      (≤ 104 frames at N = 10: at most 13 frames) untouched and keeps memory flat on long videos.
    - ``resolution``: the short side, in pixels, at which the network sees each frame (None: the
      frame's own size). Boxes are scaled to it and the masks scaled back, so results always have
      the frame's size. Lower is faster (about quadratically) and coarser.
    - ``precision``: ``"fp32"`` (the reference) or ``"bf16"`` (autocast; the merge stays fp32).
    - ``channels_last``: run the convolutions in NHWC layout (faster on GPUs with tensor cores).
    - ``pipeline``: decode the next frames on a background thread while the network works.
    - ``attention``: the Memory Read's kernel: ``"sdpa"`` (PyTorch's fused attention), ``"matmul"``
      (similarity, softmax, weighted sum, in bounded blocks) or ``"auto"`` (matmul on CPU, where it
      measured faster, sdpa on GPUs). Same result up to float rounding.
    - ``fold_crm``: compose the CRM's two fusion convolutions and its decoder's first convolution
      (linear, nothing between them) into one, once per video: the same result up to float
      rounding, with about a third of their work.
    - ``adapt_steps``: test-time adaptation (:mod:`qmra.inference.adapt`): before propagating, fine-tune
      a copy of the network for this many steps on augmented views of the first frame with objects,
      its boxes as exact stage-1 targets. 0 = off.
    - ``adapt_lr``: Adam's learning rate for those steps.
    """

    mem_every: int = 10
    max_memory_frames: int = 16
    resolution: int | None = None
    precision: str = "fp32"
    channels_last: bool = False
    pipeline: bool = True
    attention: str = "auto"
    fold_crm: bool = True
    adapt_steps: int = 0
    adapt_lr: float = 1e-5

    def __post_init__(self) -> None:
        if not isinstance(self.mem_every, int) or self.mem_every < 0:
            raise ConfigError(f"mem_every must be an integer >= 0, got {self.mem_every!r}")
        if not isinstance(self.max_memory_frames, int) or self.max_memory_frames < 2:
            raise ConfigError(f"max_memory_frames must be an integer >= 2 (first + previous frame), got {self.max_memory_frames!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution < 32):
            raise ConfigError(f"resolution must be an integer >= 32 (pixels of the short side), got {self.resolution!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.adapt_steps, int) or self.adapt_steps < 0:
            raise ConfigError(f"adapt_steps must be an integer >= 0, got {self.adapt_steps!r}")
        if not self.adapt_lr > 0:
            raise ConfigError(f"adapt_lr must be positive, got {self.adapt_lr!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_KERNELS)}, got {self.attention!r}")

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the network sees for an H×W frame: the short side scaled to ``resolution``
        (never up), the aspect ratio kept."""
        if self.resolution is None or min(height, width) <= self.resolution:
            return height, width
        scale = self.resolution / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))


PRECISIONS = ("fp32", "bf16")
