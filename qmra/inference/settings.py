"""Inference settings."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable

from qmra.errors import ConfigError
from qmra.model.prior import STAGE2_BOXES
from qmra.model.qma import ATTENTION_KERNELS, ReadMode
from qmra.options import option

#: The help sections of the switches (qmra segment --help).
ACCURACY, SPEED = "accuracy switches", "speed switches"

PRECISIONS = ("fp32", "bf16")
#: What stage 1 learns to answer in test-time adaptation (``adapt_target``).
ADAPT_TARGETS = ("box", "mask-box")
#: ``--compile`` modes: off, or a :func:`torch.compile` mode (``reduce-overhead`` adds CUDA graphs on GPUs).
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def _number_or(word: str, unit: str, minimum: int | None = None) -> Callable[[str], int | None]:
    """A flag's parser: a whole number of ``unit`` (at least ``minimum``), or ``word`` (case-insensitive) for None."""

    def parse(text: str) -> int | None:
        if text.strip().lower() == word:
            return None
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit} or {word!r}, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum} {unit}, got {value}")
        return value

    return parse


#: ``--resolution``: pixels of the short side, or ``native`` (None: the frames' own size).
parse_resolution = _number_or("native", "pixels")
#: ``--memory-top-k``: memory positions, or ``all`` (None: the paper's read).
parse_top_k = _number_or("all", "memory positions", minimum=1)


def ordinal(n: int) -> str:
    """1 → '1st', 2 → '2nd', 3 → '3rd', 11 → '11th', 22 → '22nd'."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class InferenceSettings:
    """How a video is propagated.

    - ``mem_every``: besides the object's first frame and the previous frame, every N-th frame since
      the first joins the memory (the paper: 10 on DAVIS, 5 on YouTube-VOS). 0 = no extra frames
      (the paper's ``w/o EF``).
    - ``previous_every``: the previous frame held in memory is renewed only on every N-th frame since
      the object's first (frames on the ``mem_every`` schedule always join); between, the memory
      stays as it was. 1 (the paper): every predicted frame becomes the previous frame. A frame a
      few frames back is less like the query than the one just before, so its errors (a box stretched
      onto a look-alike) pass on less: see docs/results-history.md for what validation measured.
    - ``min_piece``: a piece of an object's mask (its 8-connected parts) smaller than this share of
      its largest piece is dropped from the masks returned (:mod:`qmra.inference.pieces`); the memory
      never sees the mask, so tracking is unchanged. 0 (the paper): every piece stays.
    - ``max_memory_frames``: the cap on stored frames per object, first and previous included. The
      first frame always stays; the oldest extra frame goes first. 16 leaves DAVIS-length videos
      (≤ 104 frames at N = 10: at most 13 frames) untouched and keeps memory flat on long videos; at
      N = 5 (what the shipped weights recommend) it is reached at frame 71, and the 90–100-frame
      validation videos that chose N = 5 ran with it.
    - ``resolution``: the short side, in pixels, at which the network sees each frame, smaller
      frames scaled up and larger ones down (None: the frame's own size). Boxes are scaled to it and
      the masks scaled back, so results always have the frame's size. Lower is faster (about
      quadratically) and coarser.
    - ``precision``: ``"fp32"`` (the reference) or ``"bf16"`` (autocast; the merge stays fp32).
    - ``channels_last``: run the convolutions in NHWC layout (the default: faster on GPUs with tensor
      cores and on CPUs through oneDNN; the same function, rounded differently).
    - ``pipeline``: decode the next frames on a background thread while the network works.
    - ``attention``: the Memory Read's kernel: ``"sdpa"`` (PyTorch's fused attention), ``"matmul"``
      (similarity, softmax, weighted sum, in bounded blocks) or ``"auto"`` (matmul on CPU, where it
      measured faster, sdpa on GPUs). Same result up to float rounding.
    - ``memory_top_k``: None (the paper) reads each query position from a softmax over all memory
      positions; K restricts that softmax to its K best-matching positions (STCN's top-k filter),
      so a few strong matches are not drowned by many weak ones on texture that resembles the object.
      A different result, not a speed switch: the shipped weights recommend it where validation
      chose it.
    - ``stage2_box``: what the box handed to stage 2 surrounds: ``"all"`` of stage 1's p > 0.5 (the
      paper) or its ``"largest-blob"`` (the connected part with the most probability), so that
      stage 1 also firing on a look-alike elsewhere does not stretch the box over both. Also the box
      each tracked frame is stored in memory with. A different result, not a speed switch: the
      shipped weights recommend it where validation chose it.
    - ``redetect``: where an object's mask is empty on a tracked frame (hidden, or lost), look for it
      by its look on its boxed frame and, where found, hand stage 2 that box in place of stage 1's
      empty one (:mod:`qmra.inference.redetect`): an object that comes back away from where it was
      hidden is found again. Off (the paper): stage 1 alone decides where the object is.
    - ``fold_crm``: compose the CRM's two fusion convolutions and its decoder's first convolution
      (linear, nothing between them) into one, once per video: the same result up to float
      rounding, with about a third of their work.
    - ``adapt_steps``: test-time adaptation (:mod:`qmra.inference.adapt`): before propagating, fine-tune
      a copy of the network for this many steps on augmented views of the first frame with objects,
      stage 1 learning to answer the boxes ``adapt_target`` names; objects that start on later frames
      get a copy of their own, adapted to their frame. 0 = off.
    - ``grey_adapt_steps``: where ``adapt_steps`` is 0, the adaptation steps of a greyscale video run
      with weights whose card says they learned from colour video only (the run's first frame with
      objects decides: :mod:`qmra.inference.greyscale`). 0 = never.
    - ``adapt_lr``: Adam's learning rate for those steps.
    - ``adapt_target``: what stage 1 learns to answer in those steps: ``"box"``, the box given (the
      object's exact extent), or ``"mask-box"``, the box around the network's own first-frame mask
      inside it (the given box where that mask is empty), so that a loose box does not teach it the
      background inside. The memory views see the given box either way, as inference gives it.
    - ``adapt_mask_weight``: how much the stage-2 and refined masks learn in those steps from the
      network's own first-frame mask inside the box (a pseudo-label); 0: stage 1 alone learns, from
      the box. The shipped weights recommend 0 (chosen on validation, see docs/results-history.md).
    - ``adapt_seed``: the seed of the views adaptation draws. A run is reproducible for one seed;
      another seed gives a different, equally likely result (on the validation sequences J&F moves
      by several points between seeds, see docs/results-history.md), so scores are compared over several.
    - ``adapt_average``: N adaptations with seeds ``adapt_seed·N`` … ``adapt_seed·N + N − 1``, their
      weights averaged into one network (a "soup"): the seed matters less, adaptation takes N times
      as long, each frame costs what one network's does. With ``ensemble``, each copy is such an average.
    - ``ensemble``: N copies of the network adapted with seeds ``adapt_seed·N`` … ``adapt_seed·N + N − 1``,
      each following the objects on its own (its own box and memory), their masks averaged
      (:mod:`qmra.inference.ensemble`): less dependent on the adaptation's seed, N times the work and
      the memory. Without adaptation the copies would be one network, and one runs (:attr:`copies`).
    - ``threads``: intra-op threads on the CPU (None: qmra chooses, see :mod:`qmra.inference.threads`).
    - ``compile``: ``"off"``, or the :func:`torch.compile` mode for the per-frame network calls
      (:mod:`qmra.inference.runtime`). The memory then keeps one shape for the whole video (all
      its slots, the empty ones masked), so each object count compiles once; ``"reduce-overhead"``
      also replays each frame as a CUDA graph on GPUs. Same result up to float rounding.

    Each field that users set from the command line declares its flag and help here
    (:mod:`qmra.options`); the commands build their parsers from them.
    """

    mem_every: int = field(default=10, metadata=option(
        "every N-th frame joins the memory (0: none)", metavar="N", group=ACCURACY,
        show=lambda n: f"every {ordinal(n)} frame" if n else "0 (none)"))
    previous_every: int = field(default=1, metadata=option(
        "the previous frame held in memory is renewed only every N-th frame (1: every frame, the paper); frames "
        "on the --mem-every schedule always join", metavar="N", group=ACCURACY,
        show=lambda n: f"every {ordinal(n)} frame" if n > 1 else "1 (every frame)"))
    max_memory_frames: int = field(default=16, metadata=option(
        "memory cap per object, first and previous frame included", metavar="N", group=ACCURACY,
        show=lambda n: f"{n} frames"))
    resolution: int | None = field(default=None, metadata=option(
        "the network sees frames with this short side, smaller ones scaled up and larger ones down (masks come "
        "back at full size), or 'native' for the frames' own size", metavar="PIXELS", parse=parse_resolution,
        default_text="native", group=ACCURACY,
        show=lambda n: f"{n} px"))
    precision: str = field(default="fp32", metadata=option(
        "fp32 (the reference) or bf16 autocast: faster on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), "
        "far slower on other CPUs; results differ a little", choices=PRECISIONS, group=SPEED))
    channels_last: bool = field(default=True, metadata=option(
        "NHWC convolutions: faster on GPUs and CPUs (1.1x on a 2-core CPU), the same masks up to float rounding",
        group=SPEED, both_ways=True))
    pipeline: bool = field(default=True, metadata=option("read frames on the main thread", flag="--no-pipeline",
                                                                   group=SPEED))
    attention: str = field(default="auto", metadata=option(
        "the Memory Read's kernel: sdpa (fused), matmul (in bounded blocks), auto (matmul on CPU, sdpa on GPUs)",
        choices=ATTENTION_KERNELS, group=SPEED))
    memory_top_k: int | None = field(default=None, metadata=option(
        "read each position from its K best-matching memory positions only, or 'all' (the paper)", metavar="K",
        parse=parse_top_k, default_text="all", group=ACCURACY, show=lambda k: f"top {k}"))
    stage2_box: str = field(default="all", metadata=option(
        "stage 2's box surrounds all of stage 1's confident pixels (the paper) or only their largest blob",
        choices=STAGE2_BOXES, group=ACCURACY))
    min_piece: float = field(default=0.0, metadata=option(
        "drop each piece of an object's mask smaller than this share of its largest piece, as the mask spreading onto "
        "look-alike background (0: keep every piece, the paper)", metavar="SHARE", parse=float, group=ACCURACY,
        show=lambda share: f"{share:g} of the largest piece" if share else "0 (every piece)"))
    redetect: bool = field(default=False, metadata=option(
        "where an object's mask is empty, look for it by its look on its boxed frame, so that an object hidden and "
        "back elsewhere is found again", group=ACCURACY, both_ways=True))
    fold_crm: bool = field(default=True, metadata=option(
        "run the CRM's fusion convolutions and its decoder's first convolution one by one (by default they are "
        "composed into one, once per video: same result, less work)", flag="--no-fold-crm", group=SPEED))
    adapt_steps: int = field(default=0, metadata=option(
        "test-time adaptation: fine-tune a copy of the network for STEPS steps on the boxes of the frame where "
        "objects start, before following them (0: off); what stage 1 learns to answer there: --adapt-target",
        flag="--adapt", metavar="STEPS", group=ACCURACY,
        show=lambda n: f"{n} steps" if n else "0 (off)"))
    #: Weights that learned from colour video alone lose much of their accuracy on greyscale video,
    #: and adapting them to its first boxed frame won it back on validation (docs/results-history.md).
    grey_adapt_steps: int = field(default=10, metadata=option(
        "on greyscale video, where the weights learned from colour video only, adapt the network for STEPS steps as "
        "--adapt does, unless --adapt is given (0: never)", flag="--grey-adapt", metavar="STEPS", group=ACCURACY,
        show=lambda n: f"{n} steps on greyscale video" if n else "0 (off)"))
    adapt_lr: float = field(default=1e-5, metadata=option("learning rate of those steps", metavar="LR", group=ACCURACY))
    adapt_target: str = field(default="box", metadata=option(
        "what stage 1 learns to answer in adaptation: the box given ('box') or the box around the network's own "
        "first-frame mask inside it ('mask-box'), so that a loose box does not teach it the background inside",
        choices=ADAPT_TARGETS, group=ACCURACY))
    adapt_mask_weight: float = field(default=1.0, metadata=option(
        "weight of the mask losses in adaptation, against the masks given (--masks), or for an object given by "
        "its box the network's own first-frame mask (0: only stage 1 learns, from the box)", metavar="W", group=ACCURACY))
    adapt_seed: int = field(default=0, metadata=option(
        "seed of the augmented views adaptation draws (another seed: another, equally likely result)", metavar="SEED",
        group=ACCURACY))
    adapt_average: int = field(default=1, metadata=option(
        "adapt N copies of the network, each with its own seed, and average their weights into one network: "
        "steadier than one adaptation, N times its time, one network's cost per frame", metavar="N", group=ACCURACY,
        show=lambda n: f"{n} adaptations averaged" if n > 1 else "1"))
    ensemble: int = field(default=1, metadata=option(
        "adapt N copies of the network, each with its own seed, that follow the objects each on its own, "
        "their masks averaged (steadier; N times the work; needs --adapt)",
        metavar="N", group=ACCURACY, show=lambda n: f"{n} copies" if n > 1 else "1"))
    threads: int | None = field(default=None, metadata=option(
        "CPU threads for the network's operations", metavar="N", parse=int,
        default_text="chosen for the cores free now (see docs/speed.md)", group=SPEED))

    compile: str = field(default="off", metadata=option(
        "compile the per-frame network calls with torch.compile in this mode (reduce-overhead: also CUDA graphs on "
        "GPUs); the first frames then take longer", choices=COMPILE_MODES, group=SPEED))

    def __post_init__(self) -> None:
        if not isinstance(self.mem_every, int) or self.mem_every < 0:
            raise ConfigError(f"mem_every must be an integer >= 0, got {self.mem_every!r}")
        if isinstance(self.previous_every, bool) or not isinstance(self.previous_every, int) or self.previous_every < 1:
            raise ConfigError(f"previous_every must be an integer >= 1, got {self.previous_every!r}")
        if not isinstance(self.max_memory_frames, int) or self.max_memory_frames < 2:
            raise ConfigError(f"max_memory_frames must be an integer >= 2 (first + previous frame), got {self.max_memory_frames!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution < 32):
            raise ConfigError(f"resolution must be an integer >= 32 (pixels of the short side), got {self.resolution!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.adapt_steps, int) or self.adapt_steps < 0:
            raise ConfigError(f"adapt_steps must be an integer >= 0, got {self.adapt_steps!r}")
        if isinstance(self.grey_adapt_steps, bool) or not isinstance(self.grey_adapt_steps, int) or self.grey_adapt_steps < 0:
            raise ConfigError(f"grey_adapt_steps must be an integer >= 0, got {self.grey_adapt_steps!r}")
        if not isinstance(self.adapt_seed, int) or self.adapt_seed < 0:
            raise ConfigError(f"adapt_seed must be an integer >= 0, got {self.adapt_seed!r}")
        if not self.adapt_mask_weight >= 0:
            raise ConfigError(f"adapt_mask_weight must be >= 0, got {self.adapt_mask_weight!r}")
        if not self.adapt_lr > 0:
            raise ConfigError(f"adapt_lr must be positive, got {self.adapt_lr!r}")
        if isinstance(self.adapt_average, bool) or not isinstance(self.adapt_average, int) or self.adapt_average < 1:
            raise ConfigError(f"adapt_average must be an integer >= 1, got {self.adapt_average!r}")
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise ConfigError(f"ensemble must be an integer >= 1, got {self.ensemble!r}")
        if self.copies > 1 and self.compile != "off":
            raise ConfigError(f"--compile runs one network, not an ensemble of {self.ensemble}: add --ensemble 1")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")
        if isinstance(self.min_piece, bool) or not isinstance(self.min_piece, (int, float)) or not 0 <= self.min_piece <= 1:
            raise ConfigError(f"min_piece must be a share of the largest piece, 0 to 1, got {self.min_piece!r}")
        if self.adapt_target not in ADAPT_TARGETS:
            raise ConfigError(f"adapt_target must be one of {', '.join(ADAPT_TARGETS)}, got {self.adapt_target!r}")
        if self.stage2_box not in STAGE2_BOXES:
            raise ConfigError(f"stage2_box must be one of {', '.join(STAGE2_BOXES)}, got {self.stage2_box!r}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        try:
            self.read_mode
        except ValueError as error:  # ReadMode's own check names the field: kernel (attention here) or top_k
            raise ConfigError(f"{str(error).replace('kernel', 'attention').replace('top_k', 'memory_top_k')}") from None

    @property
    def copies(self) -> int:
        """How many networks follow the objects: ``ensemble``, or 1 without adaptation (identical copies)."""
        return self.ensemble if self.adapt_steps > 0 else 1

    @property
    def read_mode(self) -> ReadMode:
        """How the Memory Read runs: ``attention``'s kernel and ``memory_top_k``."""
        return ReadMode(self.attention, self.memory_top_k)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the network sees for an H×W frame: the short side scaled to ``resolution``, down
        or up, the aspect ratio kept. Up too because the network reads at stride 16: an object of 30
        pixels in a 192-pixel frame is two feature cells and was lost within frames; scaled to 384 it
        is four (on the held-out flying videos, 272 pixels high: J&F 57.0 scaled up, 52.6 as they are)."""
        if self.resolution is None or min(height, width) == self.resolution:
            return height, width
        scale = self.resolution / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))


