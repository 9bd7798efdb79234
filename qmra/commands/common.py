"""Argument helpers shared by the commands."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from qmra.errors import QmraError
from qmra.inference.settings import InferenceSettings
from qmra.options import Option, add_options, apply_options, help_section
from qmra.presets import PRESETS, get_preset

if TYPE_CHECKING:
    from qmra.data.frames import FrameInfo


#: ``--backwards`` of ``qmra segment`` and ``qmra batch``.
BACKWARDS_HELP = ("also follow each object boxed after the first frame back to frame 0, for objects already in view "
                  "before the frame they were boxed on (one more run, backwards); without it an object's masks start "
                  "on its box's frame")
#: ``--every``'s help, the same in ``qmra segment`` and ``qmra batch``.
EVERY_HELP = ("segment and write only every N-th frame, from the first one segmented (FIRST of a range): N times as "
              "fast, for sampling long videos; file names keep the video's frame numbers, the videos written play at "
              "its frame rate / N, and every box must lie on one of those frames")


def add_redaction_arguments(group: argparse._ArgumentGroup) -> None:
    """``--redact-style`` and ``--redact-shape`` of ``qmra segment`` and ``qmra batch``, defaults from
    :class:`~qmra.data.redaction.Redaction`."""
    from qmra.data.redaction import REDACT_SHAPES, REDACT_STYLES, Redaction

    group.add_argument("--redact-style", choices=REDACT_STYLES,
                       help="how --redact hides the objects: a Gaussian blur, square cells of their mean colour, or black "
                            "(the only one that leaves nothing to recover); blur and cells scale with each object (1/8 "
                            f"of its short side); default {Redaction.style}")
    group.add_argument("--redact-shape", choices=REDACT_SHAPES,
                       help="what --redact hides, widened by 1%% of the frame's short side: the box around each "
                            "object's mask, which also covers what the mask misses inside it (for privacy), or the mask "
                            f"alone (neater); default {Redaction.shape}")


def redaction(args: argparse.Namespace):
    """The :class:`~qmra.data.redaction.Redaction` that ``--redact-style`` and ``--redact-shape`` ask for,
    None without ``--redact`` (where either of them is an error: it would do nothing)."""
    from qmra.data.redaction import Redaction

    if not args.redact:
        given = [flag for flag, value in (("--redact-style", args.redact_style), ("--redact-shape", args.redact_shape)) if value]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise QmraError(f"{' and '.join(given)} only {verb} with --redact (the video with the objects hidden)")
        return None
    return Redaction(args.redact_style or Redaction.style, args.redact_shape or Redaction.shape)


def every_nth(text: str) -> int:
    """``--every``: a whole number of 1 or more."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return int(text)


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


def progress_style(quiet: bool) -> str | bool:
    """How a run that segments shows its progress: a bar in a terminal, a line every few seconds in a
    log or a pipe (:mod:`qmra.inference.progress`), nothing with ``--quiet``."""
    if quiet:
        return False
    return "bar" if sys.stderr.isatty() else "lines"


#: Help sections of the commands that segment.
NETWORK, ACCURACY, SPEED = "network", "accuracy switches", "speed switches"


def add_speed_arguments(parser: argparse.ArgumentParser, weights_recommend: bool = True) -> None:
    """Inference switches shared by ``segment``, ``eval``, ``demo`` and ``bench``: ``--preset`` and one
    flag per option field of :class:`InferenceSettings` (declared there, with its help and section).
    ``weights_recommend``: the command's defaults are what the weights recommend (not for ``bench``,
    whose defaults are the preset's)."""
    presets = "; ".join(f"{name}: {preset.settings_text if weights_recommend else preset.description}"
                        for name, preset in PRESETS.items())
    changes = ("its network and settings (this command measures a preset)" if not weights_recommend
               else "its inference settings instead of what the weights recommend (the network stays the weights')")
    help_section(parser, NETWORK).add_argument("--preset", choices=tuple(PRESETS), help=f"use {changes}. {presets}")
    recommended = shipped_recommendations() if weights_recommend else {}  # read once, not per flag

    def default_text(name: str, option: Option, text: str) -> str:
        """What a run without the flag uses: the shipped weights' value where they recommend one
        (other weights: theirs), else the field's default ``text``."""
        if name not in recommended or option.shown(recommended[name]) == text:
            return text
        return f"{option.shown(recommended[name])} with the shipped weights (their recommendation; else {text})"

    add_options(parser, InferenceSettings, default_text=default_text)


def shipped_recommendations() -> dict:
    """The inference settings the shipped weights recommend ({} where they are missing or unreadable:
    the help still shows)."""
    from qmra.inference.card import shipped_card

    try:
        return dict(shipped_card().recommended)
    except QmraError:
        return {}


def speed_settings(args: argparse.Namespace, base: InferenceSettings) -> InferenceSettings:
    """``base`` (a preset's, or the weights' recommended settings) with the command line's switches applied."""
    return apply_options(args, base)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--device`` and the speed switches: what every command that segments takes."""
    network = help_section(parser, NETWORK)
    network.add_argument("--weights", metavar="FILE", help="a qmra checkpoint (.safetensors); default: the weights qmra ships")
    network.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_speed_arguments(parser)


def make_segmenter(args: argparse.Namespace, progress: str | bool):
    """The :class:`Segmenter` that ``add_model_arguments``' flags ask for: the given or shipped weights,
    their recommended settings (or the preset's), then the switches. The weights' card is read once."""
    from qmra.inference import Segmenter
    from qmra.inference.card import read_card, shipped_card

    card = read_card(args.weights) if args.weights else shipped_card()
    base = get_preset(args.preset).settings if args.preset else card.settings
    segmenter = Segmenter.from_checkpoint(card, args.device, speed_settings(args, base), progress)
    if segmenter.settings.compile != "off" and segmenter.device.type == "cpu":
        print("qmra: warning: --compile compiles the network first (about a minute on a small CPU) and measured no "
              "faster on CPUs; it is meant for GPUs (docs/speed.md)", file=sys.stderr)
    return segmenter


def say_working_size(segmenter, width: int, height: int) -> None:
    """``--verbose``: the size the network sees this video's frames at, and the switch that sets it (stderr)."""
    settings = segmenter.settings
    seen_height, seen_width = settings.working_size(height, width)
    if settings.resolution is None:
        why = "--resolution native"
    elif seen_height * seen_width < height * width:
        why = f"--resolution {settings.resolution}; --resolution native sees them as they are: finer, and slower"
    elif seen_height * seen_width > height * width:
        why = f"--resolution {settings.resolution}: scaled up, so that small objects cover more of the network's cells"
    else:
        why = f"--resolution {settings.resolution}"
    print(f"qmra: working size: {width}x{height} frames are seen at {seen_width}x{seen_height} ({why})", file=sys.stderr)


def say_hdr(info: FrameInfo) -> None:
    """``--verbose``: that an HDR video is read as SDR, as players show it (stderr); nothing for SDR."""
    if info.hdr:
        print(f"qmra: colour: an HDR video ({info.hdr}, BT.2020): tone-mapped to SDR (BT.709) as players show it, "
              "for the network and every file written", file=sys.stderr)


def say_threads(segmenter) -> None:
    """``--verbose``: the CPU thread count the segmenter's runs use, and why (stderr)."""
    if segmenter.device.type != "cpu" and segmenter.settings.threads is None:
        print(f"qmra: threads: PyTorch's own ({segmenter.threads.count}) on {segmenter.device}", file=sys.stderr)
        return
    count = segmenter.threads.refresh()
    print(f"qmra: threads: {count} ({segmenter.threads.reason})", file=sys.stderr)
