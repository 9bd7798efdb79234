"""``qmra bench``: speed and memory of the real inference session on a synthetic clip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from qmra.commands.common import add_speed_arguments, parse_size, speed_settings
from qmra.errors import QmraError
from qmra.model.backbones import BACKBONES

if TYPE_CHECKING:
    from qmra.inference.settings import InferenceSettings
    from qmra.model import QMRA
    from qmra.presets import Preset


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="measure frames per second, time per part and memory of the real session",
        description="Runs the real inference session on a synthetic clip (JPEG frames in, PNG masks out) and prints "
                    "frames per second (median of --runs consecutive runs of --frames frames, after --warmup frames), the "
                    "time per frame of each part (from one more, profiled run), one backbone pass and the ratio, and peak memory after each of "
                    "--memory-frames frames. Weights do not change speed: random ones are used unless --weights is given.")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--size", default="854x480", help="WIDTHxHEIGHT of the clip (default 854x480)")
    parser.add_argument("--objects", help="object counts to time, comma-separated (default 1,3 on GPUs, 1 on CPU)")
    parser.add_argument("--frames", type=int, help=f"timed frames per run (default {QUICK_CPU['frames']} on CPU, "
                                                    f"{FULL['frames']} on GPUs)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per object count; the median is reported (default 3)")
    parser.add_argument("--warmup",
                        help="frames before the clock starts, or 'full': until every object's memory holds all the "
                             "frames it ever will (142 with the default schedule), so that the timed frames cost what "
                             f"frames of a long video cost (default: full on GPUs, {QUICK_CPU['warmup']} on CPU, where "
                             "'full' takes many minutes)")
    parser.add_argument("--backbone", choices=BACKBONES, help="override the preset's backbone")
    parser.add_argument("--decoder-channels", type=int, help="override the preset's decoder width")
    parser.add_argument("--weights", metavar="FILE",
                        help="a qmra checkpoint to time instead of the preset's network, with the settings it recommends "
                             "(what qmra segment runs it with) unless --preset is given")
    add_speed_arguments(parser, weights_recommend=False)
    parser.add_argument("--memory-frames",
                        help="frame counts after which peak memory is reported, from one long run ('none' skips it; "
                             f"default {FULL['memory_frames']} on GPUs, {QUICK_CPU['memory_frames']} on CPU)")
    parser.add_argument("--memory-size", help="WIDTHxHEIGHT of the long run (default: --size)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled run that splits time by part")
    parser.add_argument("--model-only", choices=("yes", "no"),
                        help="also time each object count on frames already in memory with no results written: the "
                             f"session alone (default {FULL['model_only']} on GPUs, {QUICK_CPU['model_only']} on CPU, "
                             "where I/O is a rounding error)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON, on one line")
    parser.set_defaults(handler=run)


#: The defaults on a CPU: about a minute for the paper preset on a 2-core machine. The steady-state
#: measurement (memory full, long-run memory) is what GPUs get by default; on a CPU it is asked for.
QUICK_CPU = {"objects": "1", "frames": 2, "warmup": "1", "memory_frames": "none", "model_only": "no"}
FULL = {"objects": "1,3", "frames": 20, "warmup": "full", "memory_frames": "100,2000", "model_only": "yes"}
LONG_CPU_HINT = "--objects 1,3 --warmup full --frames 20 --memory-frames 100,2000"


def _counts(text: str, name: str) -> tuple[int, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise QmraError(f"{name} takes comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise QmraError(f"{name} takes numbers >= 1, got {text!r}")
    return values


def _warmup(text: str) -> int | None:
    """``--warmup``: a number of frames (at least 1: the first frame starts the objects), or 'full' → None."""
    if text.strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise QmraError(f"--warmup takes a number of frames or 'full', got {text!r}") from None
    if value < 1:
        raise QmraError("--warmup must be at least 1 (the first frame starts the objects)")
    return value


def _object_counts(args: argparse.Namespace) -> list[int]:
    """--objects as counts (1 to 20), after checking --frames and --runs."""
    objects = _counts(args.objects, "--objects")
    if not objects:
        raise QmraError("--objects needs at least one count")
    if max(objects) > 20:
        raise QmraError("--objects: at most 20 objects")
    for name in ("frames", "runs"):
        if getattr(args, name) < 1:
            raise QmraError(f"--{name} must be at least 1")
    return objects


def _model_and_settings(args: argparse.Namespace, preset: Preset) -> tuple[QMRA, InferenceSettings]:
    """The network to time (--weights, or the preset's with random weights) and its inference settings."""
    from dataclasses import replace

    from qmra.inference.card import read_card
    from qmra.inference.segmenter import random_model

    if args.weights:
        card = read_card(args.weights)
        return card.load_model(), speed_settings(args, preset.settings if args.preset else card.settings)
    config = preset.model
    if args.backbone:
        config = replace(config, backbone=args.backbone)
    if args.decoder_channels:
        config = replace(config, decoder_channels=args.decoder_channels)
    return random_model(config), speed_settings(args, preset.settings)


def run(args: argparse.Namespace) -> int:
    import torch

    from qmra.benchmark import BenchSpec, run_bench
    from qmra.inference.segmenter import resolve_device
    from qmra.inference.threads import ThreadChoice
    from qmra.presets import get_preset

    preset = get_preset(args.preset or "paper")
    device = resolve_device(args.device)
    height, width = parse_size(args.size)
    memory_height, memory_width = parse_size(args.memory_size) if args.memory_size else (height, width)
    defaults = QUICK_CPU if device.type == "cpu" else FULL
    quick = device.type == "cpu" and all(getattr(args, name) is None for name in defaults)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    objects = _object_counts(args)
    warmup = _warmup(args.warmup)
    model, settings = _model_and_settings(args, preset)
    spec = BenchSpec(width=width, height=height, objects=objects, frames=args.frames, runs=args.runs, warmup=warmup,
                     profile=not args.no_profile, memory_frames=_counts(args.memory_frames, "--memory-frames"),
                     memory_width=memory_width, memory_height=memory_height, model_only=args.model_only == "yes")
    config = model.config
    source = f"preset {preset.name}"
    if args.weights:
        source = f"weights {args.weights}" + (f", preset {preset.name}'s settings" if args.preset else " (their settings)")
    print(f"qmra bench: {source}, {config.backbone} decoders {config.decoder_channels}, {width}x{height}, "
          f"resolution {settings.resolution or 'native'}, {settings.precision}{', channels-last' if settings.channels_last else ''}, "
          f"on {device} ({ThreadChoice(settings.threads, device).count} CPU threads, torch {torch.__version__})", flush=True)
    if quick:
        print(f"a quick measurement (one object, memory not yet full, no long run: about a minute for the paper preset on "
              f"2 cores); the full one takes hours on a CPU: qmra bench {LONG_CPU_HINT}", flush=True)
    results = run_bench(model, settings, device, spec, log=lambda line: print(line, flush=True))
    results["preset"] = preset.name if args.preset or not args.weights else None
    results["weights"] = args.weights
    if args.json:
        from qmra.data.atomic import write_text_atomic

        write_text_atomic(Path(args.json), json.dumps(results) + "\n")
        print(f"wrote {args.json}")
    return 0
