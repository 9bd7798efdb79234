"""Argument helpers shared by the commands."""

from __future__ import annotations

import argparse
import sys

from qmra.errors import QmraError
from qmra.model.qma import ATTENTION_KERNELS


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (width x height, as videos are named: 854x480) → (H, W), both at least 16."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise QmraError(f"size must look like 854x480 (width x height), got {text!r}") from None
    if height < 16 or width < 16:
        raise QmraError(f"size must be at least 16x16, got {text!r}")
    return height, width


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not quiet and sys.stderr.isatty()


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """Inference switches shared by ``segment``, ``eval``, ``demo`` and ``bench`` (default: the preset's / the reference)."""
    parser.add_argument("--preset", choices=("paper", "fast"),
                        help="paper: the reference path; fast: the network sees frames at 224 pixels (short side) in "
                             "NHWC layout. 'qmra bench' also builds the preset's network (paper: ResNet-50; fast: "
                             "ResNet-18 with 64-channel decoders); default paper")
    parser.add_argument("--resolution", type=_resolution, metavar="PIXELS",
                        help="the network sees frames with this short side (masks come back at full size), or "
                             "'native'; default: the preset's, else what the weights recommend")
    parser.add_argument("--mem-every", type=int, metavar="N", help="every N-th frame joins the memory (0: none; default 10)")
    parser.add_argument("--max-memory-frames", type=int, metavar="N",
                        help="memory cap per object, first and previous frame included (default 16)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast (default fp32, the reference)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC convolutions (pays on GPUs)")
    parser.add_argument("--no-pipeline", action="store_true", help="read frames on the main thread")
    parser.add_argument("--attention", choices=ATTENTION_KERNELS,
                        help="the Memory Read's kernel: sdpa (fused), matmul (in bounded blocks), auto (default: "
                             "matmul on CPU, sdpa on GPUs)")
    parser.add_argument("--adapt", type=int, metavar="STEPS",
                        help="test-time adaptation: fine-tune a copy of the network for STEPS steps on the first frame's "
                             "boxes before propagating (0: off); default: what the weights recommend, else 0")
    parser.add_argument("--adapt-lr", type=float, metavar="LR",
                        help="learning rate of those steps; default: what the weights recommend, else 1e-5")
    parser.add_argument("--no-fold-crm", action="store_true",
                        help="run the CRM's fusion convolutions and its decoder's first convolution one by one (by "
                             "default they are composed into one, once per video: same result, less work)")


NATIVE = 0  # --resolution native


def _resolution(text: str) -> int:
    if text.strip().lower() == "native":
        return NATIVE
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'native', got {text!r}") from None
    return value


def speed_settings(args: argparse.Namespace, base):
    """The preset's (or default) inference settings with the command line's switches applied."""
    from dataclasses import replace

    changes: dict = {}
    if args.resolution is not None:
        changes["resolution"] = None if args.resolution == NATIVE else args.resolution
    if args.mem_every is not None:
        changes["mem_every"] = args.mem_every
    if args.max_memory_frames is not None:
        changes["max_memory_frames"] = args.max_memory_frames
    if args.precision is not None:
        changes["precision"] = args.precision
    if args.channels_last:
        changes["channels_last"] = True
    if args.no_pipeline:
        changes["pipeline"] = False
    if args.attention is not None:
        changes["attention"] = args.attention
    if args.no_fold_crm:
        changes["fold_crm"] = False
    if args.adapt is not None:
        changes["adapt_steps"] = args.adapt
    if args.adapt_lr is not None:
        changes["adapt_lr"] = args.adapt_lr
    return replace(base, **changes)
