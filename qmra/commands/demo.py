"""``qmra demo``: a synthetic clip with several objects and a look-alike, segmented end to end."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from qmra.commands.common import parse_size, show_progress

DEMO_DIR = Path("qmra-demo")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="segment a synthetic clip and score it: writes ./qmra-demo/")
    parser.add_argument("--size", default="192x256", help="HEIGHTxWIDTH of the synthetic clip (default 192x256)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEMO_DIR), help="output folder (default ./qmra-demo; it is replaced)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.commands.segment import make_segmenter
    from qmra.data import SyntheticConfig, SyntheticVideo, open_frames
    from qmra.errors import QmraError
    from qmra.inference.outputs import ResultWriter

    height, width = parse_size(args.size)
    if args.frames < 2 or not 1 <= args.objects <= 20:
        raise QmraError("the demo needs --frames >= 2 and 1..20 --objects")
    out = Path(args.out)
    video = SyntheticVideo(SyntheticConfig(height, width, args.frames, args.objects, num_distractors=1, seed=args.seed), "demo")
    source_path = video.write_mp4(out / "input.mp4", fps=12, annotations=out / "truth")
    print(f"made a synthetic clip: {args.frames} frames of {width}x{height}, {args.objects} objects and a look-alike "
          f"distractor -> {source_path}", flush=True)

    args.weights, args.mem_every, args.max_memory_frames = None, 10, 16
    segmenter = make_segmenter(args, show_progress(args.quiet))
    session = segmenter.start(open_frames(source_path))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box, frame=0)
    writer = ResultWriter(out / "masks", height=height, width=width, fps=12, video_name="demo", overlay=out / "overlay.mp4")
    intersections = np.zeros(args.objects)
    unions = np.zeros(args.objects)
    ious: list[list[float]] = [[] for _ in range(args.objects)]
    start = time.perf_counter()
    try:
        for index, result in session.propagate():
            writer.write(result)
            if index == 0:
                continue  # the boxed frame is not scored, as in DAVIS
            truth = video.labels(index)
            for slot, object_id in enumerate(sorted(video.first_boxes())):
                predicted, actual = result.labels == object_id, truth == object_id
                union = int((predicted | actual).sum())
                ious[slot].append(1.0 if union == 0 else int((predicted & actual).sum()) / union)
                intersections[slot] += int((predicted & actual).sum())
                unions[slot] += union
    finally:
        writer.close()
    seconds = time.perf_counter() - start
    model = segmenter.model.config
    print(f"model: QMRA {model.backbone} '{model.variant}'{' with RANDOM weights' if segmenter.random_weights else ''}")
    print("J (mean IoU over frames 1..end, per object): " + ", ".join(f"object {i + 1}: {np.mean(v):.3f}" for i, v in enumerate(ious)))
    print(f"J-Mean over objects: {np.mean([np.mean(v) for v in ious]):.3f}")
    print(f"speed: {args.frames / seconds:.2f} frames/s end to end ({args.objects} objects, {segmenter.device}, "
          f"{_threads()} threads)")
    print(f"wrote {out}/masks/ (DAVIS palette PNGs), {out}/overlay.mp4, {out}/input.mp4 and {out}/truth/")
    if segmenter.random_weights:
        print("REMINDER: these scores come from RANDOM weights; trained weights will ship with a later release.")
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()
