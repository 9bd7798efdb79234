"""``qmra synthetic``: write a synthetic video with exact masks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qmra.commands.common import parse_size
from qmra.errors import QmraError


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("synthetic", help="write a synthetic video with exact masks (DAVIS folder or mp4)")
    parser.add_argument("out", help="an .mp4 file (masks go to <out>-masks/ beside it) or a folder for the DAVIS layout")
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (default 320x240)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--objects", type=int, default=2, help="labelled objects (ids 1..N)")
    parser.add_argument("--distractors", type=int, default=1, help="unlabelled look-alikes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="sequence name in the DAVIS layout (default synthetic-SEED)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.data import SyntheticConfig, SyntheticVideo

    height, width = parse_size(args.size)
    if args.frames < 1 or args.objects < 1 or args.distractors < 0:
        raise QmraError("--frames and --objects must be at least 1 and --distractors at least 0")
    if args.objects > 254:
        raise QmraError("--objects can be at most 254")
    video = SyntheticVideo(SyntheticConfig(height, width, args.frames, args.objects, args.distractors, args.seed), args.name)
    out = Path(args.out)
    boxes = {str(k): list(v.as_tuple()) for k, v in video.first_boxes().items()}
    if out.suffix.lower() == ".mp4":
        masks = out.parent / f"{out.stem}-masks"
        if not args.overwrite and (out.exists() or masks.exists()):
            raise QmraError(f"{out} or {masks} already exists (use --overwrite to replace)")
        video.write_mp4(out, annotations=masks)
        print(f"wrote {out} ({args.frames} frames, {width}x{height}) and its masks in {masks}/")
    else:
        sequence = out / "JPEGImages" / "480p" / video.name
        if not args.overwrite and sequence.exists():
            raise QmraError(f"{sequence} already exists (use --overwrite to replace)")
        video.write_davis(out)
        print(f"wrote the DAVIS layout for sequence {video.name} under {out}/ ({args.frames} frames, {width}x{height})")
    print("first-frame boxes (x0, y0, x1, y1): " + json.dumps(boxes))
    return 0
