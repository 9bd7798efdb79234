"""Do the speed switches give the reference masks, and what does each one give? On one real clip.

Runs the shipped weights (or ``--weights``) on the first ``--frames`` frames of a DAVIS sequence,
boxed from its first mask, once with the reference path (fp32, nothing compiled) and once per
variant, and prints one JSON line per variant: the J of its masks against the reference's (mean and
worst frame; the speed switches aim for J >= 0.99) and the median seconds per frame after the first
``--skip`` frames (compilation and CUDA-graph capture happen there).

    python -m benchmarks.agreement --davis ../shared/data/davis2016 --sequence breakdance --device cuda

Variants are ``NAME=FLAGS`` with the ``qmra segment`` speed flags, e.g.
``bf16-graphs=--precision bf16 --channels-last --compile reduce-overhead``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qmra.data import DavisDataset, box_from_mask
from qmra.evaluation.metrics import region_similarity
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.card import DEFAULT_WEIGHTS
from qmra.options import add_options, apply_options

VARIANTS = (
    "compiled=--compile default",
    "graphs=--compile reduce-overhead",
    "bf16-nhwc=--precision bf16 --channels-last",
    "bf16-nhwc-graphs=--precision bf16 --channels-last --compile reduce-overhead",
)


def variant_settings(flags: str, base: InferenceSettings) -> InferenceSettings:
    parser = argparse.ArgumentParser(add_help=False)
    add_options(parser, InferenceSettings)
    return apply_options(parser.parse_args(shlex.split(flags)), base)


def run(segmenter: Segmenter, frames: list[np.ndarray], box) -> tuple[list[np.ndarray], list[float]]:
    session = segmenter.start(frames)
    session.add_box(1, box)
    masks, seconds = [], []
    started = time.perf_counter()
    for _, result in session.propagate():
        masks.append(result.labels == 1)
        now = time.perf_counter()
        seconds.append(now - started)
        started = now
    return masks, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, required=True)
    parser.add_argument("--sequence", default="breakdance")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--skip", type=int, default=5, help="frames not timed (compilation, capture)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--variant", action="append", help="NAME=FLAGS (default: %s)" % "; ".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="append the lines to this file too")
    args = parser.parse_args(argv)

    sequence = next(s for s in DavisDataset(args.davis) if s.name == args.sequence)
    count = min(args.frames, sequence.num_frames)
    frames = [sequence.image(i) for i in range(count)]
    box = box_from_mask(sequence.labels(0) > 0)
    # The network at the frames' own size, no adaptation: the switches, not the recipe, are compared.
    base = InferenceSettings(resolution=None, adapt_steps=0)
    variants = []  # parsed before anything runs: a typo fails in a second, not after the reference run
    for variant in args.variant or VARIANTS:
        name, _, flags = variant.partition("=")
        variants.append((name, flags, variant_settings(flags, base)))
    reference_segmenter = Segmenter.from_checkpoint(args.weights, device=args.device, settings=base)
    reference, reference_seconds = run(reference_segmenter, frames, box)

    def report(name: str, flags: str, masks: list[np.ndarray], seconds: list[float]) -> None:
        scores = [region_similarity(a, b) for a, b in zip(reference, masks)]
        timed = seconds[args.skip:] or seconds
        line = {"variant": name, "flags": flags, "device": str(reference_segmenter.device),
                "frames": count, "size": list(frames[0].shape[:2]), "j_mean": float(np.mean(scores)),
                "j_min": float(np.min(scores)), "median_frame_s": statistics.median(timed),
                "first_frames_s": [round(s, 3) for s in seconds[: args.skip]], "torch": torch.__version__}
        text = json.dumps(line)
        print(text, flush=True)
        if args.json:
            with args.json.open("a") as handle:
                handle.write(text + "\n")

    report("reference", "", reference, reference_seconds)
    for name, flags, settings in variants:
        try:
            segmenter = Segmenter(reference_segmenter.model, device=args.device, settings=settings)
            masks, seconds = run(segmenter, frames, box)
        except Exception as error:  # one failing variant must not hide the others' numbers
            print(json.dumps({"variant": name, "flags": flags, "error": f"{type(error).__name__}: {error}"}), flush=True)
            continue
        report(name, flags, masks, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
