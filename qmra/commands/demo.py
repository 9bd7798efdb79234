"""``qmra demo``: a synthetic clip with several objects and a look-alike, segmented end to end."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from qmra.commands.common import add_model_arguments, make_segmenter, parse_size, progress_style, say_threads
from qmra.inference.card import WeightsCard

DEMO_DIR = Path("qmra-demo")
#: The demo's clip: its height and width (pixels), frames and objects.
DEMO_HEIGHT, DEMO_WIDTH, DEMO_FRAMES, DEMO_OBJECTS = 192, 256, 16, 3


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="segment a synthetic clip and score it: writes ./qmra-demo/")
    size = f"{DEMO_WIDTH}x{DEMO_HEIGHT}"
    parser.add_argument("--size", default=size, help=f"WIDTHxHEIGHT of the synthetic clip (default {size})")
    parser.add_argument("--frames", type=int, default=DEMO_FRAMES)
    parser.add_argument("--objects", type=int, default=DEMO_OBJECTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(DEMO_DIR), help="output folder (default ./qmra-demo; it is replaced)")
    add_model_arguments(parser)  # --weights, --device and the speed switches
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="also say how many CPU threads the network uses, and why")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.data import open_frames
    from qmra.errors import QmraError
    from qmra.evaluation import boundary_f_measure, region_similarity
    from qmra.inference.lost import LostObjects
    from qmra.inference.quality import DoubtfulObjects
    from qmra.inference.outputs import ResultWriter

    height, width = parse_size(args.size)
    if args.frames < 2 or not 1 <= args.objects <= 20:
        raise QmraError("the demo needs --frames >= 2 and 1..20 --objects")
    out = Path(args.out)
    segmenter = make_segmenter(args, progress_style(args.quiet))  # before any file is written: bad weights stop here
    if args.verbose:
        say_threads(segmenter)
    video = demo_clip(height, width, args.frames, args.objects, args.seed)
    source_path = video.write_mp4(out / "input.mp4", fps=12, annotations=out / "truth")
    print(f"made a synthetic clip: {args.frames} frames of {width}x{height}, {args.objects} objects and a look-alike "
          f"distractor -> {source_path}", flush=True)

    boxes = video.first_boxes()
    session = segmenter.start(open_frames(source_path), prompts=boxes)
    object_ids = sorted(boxes)
    writer = ResultWriter(out / "masks", height=height, width=width, fps=12, video_name="demo", overlay=out / "overlay.mp4")
    j_scores: dict[int, list[float]] = {i: [] for i in object_ids}
    f_scores: dict[int, list[float]] = {i: [] for i in object_ids}
    lost, doubtful = LostObjects(), DoubtfulObjects()
    start = time.perf_counter()
    try:
        for index, result in session.propagate():
            writer.write(result)
            lost.update(result)
            doubtful.update(result)
            if index == 0:
                continue  # the boxed frame is not scored, as in DAVIS
            truth = video.labels(index)
            for object_id in object_ids:
                predicted, actual = result.labels == object_id, truth == object_id
                j_scores[object_id].append(region_similarity(predicted, actual))
                f_scores[object_id].append(boundary_f_measure(predicted, actual))
    finally:
        writer.close()
    seconds = time.perf_counter() - start
    model = segmenter.model.config
    print(f"model: QMRA {model.backbone} '{model.variant}'"
          f"{_weights_summary(segmenter.card)}")
    print("J / F per object (DAVIS metrics, frames 1..end): "
          + ", ".join(f"object {i}: {np.mean(j_scores[i]):.3f} / {np.mean(f_scores[i]):.3f}" for i in object_ids))
    j_mean = float(np.mean([np.mean(v) for v in j_scores.values()]))
    f_mean = float(np.mean([np.mean(v) for v in f_scores.values()]))
    print(f"J-Mean {j_mean:.3f}, F-Mean {f_mean:.3f}, J&F {(j_mean + f_mean) / 2:.3f}; {lost.summary(len(object_ids))}; "
          f"{doubtful.summary()}")
    threads = segmenter.threads.count
    print(f"speed: {args.frames / seconds:.2f} frames/s end to end ({args.objects} object{'s' if args.objects != 1 else ''}, "
          f"{segmenter.device}, {threads} thread{'s' if threads != 1 else ''})")
    print(f"wrote {out}/masks/ (DAVIS palette PNGs), {out}/overlay.mp4, {out}/input.mp4 and {out}/truth/")
    program = sys.argv[0] if Path(sys.argv[0]).name == "qmra" else "qmra"
    print(f"draw your own boxes on it in the browser: {program} ui {out}/input.mp4")
    return 0


def demo_clip(height: int = DEMO_HEIGHT, width: int = DEMO_WIDTH, frames: int = DEMO_FRAMES, objects: int = DEMO_OBJECTS,
              seed: int = 0):
    """The demo's kind of clip (:class:`qmra.data.SyntheticVideo`): ``objects`` textured shapes and one
    look-alike distractor over a busy background; the defaults are ``qmra demo``'s own clip."""
    from qmra.data import SyntheticConfig, SyntheticVideo

    return SyntheticVideo(SyntheticConfig(height, width, frames, objects, num_distractors=1, seed=seed), "demo")


def _weights_summary(card: WeightsCard | None) -> str:
    """', default weights (held-out DAVIS test J&F 0.xxx at 320 px, an ensemble of 3 copies, adapted
    20 steps, mean of 3 adaptation seeds)' from a weights card with a name, else ''."""
    from qmra.inference import InferenceSettings

    if card is None or card.name is None:
        return ""
    scores = card.scores.get("test_scores") or {}
    inference = card.recommended
    where = f" at {inference['resolution']} px" if inference.get("resolution") else ""
    copies = inference.get("ensemble", 1) if inference.get("adapt_steps") else 1
    adapted = f", adapted {inference['adapt_steps']} steps" if inference.get("adapt_steps") else ""
    if adapted and inference.get("adapt_target") == "mask-box":
        adapted += " to the box around its own first mask"
    average = inference.get("adapt_average", 1) if inference.get("adapt_steps") else 1
    adapted = f"{adapted} ({average} adaptations averaged)" if average > 1 else adapted
    adapted = f", an ensemble of {copies} copies{adapted}" if copies > 1 else adapted
    if inference.get("stage2_box", "all") != "all":
        adapted += f", stage 2's box around stage 1's {inference['stage2_box'].replace('-', ' ')}"
    paper_schedule = InferenceSettings().mem_every
    if inference.get("mem_every", paper_schedule) != paper_schedule:
        adapted += f", a frame into memory every {inference['mem_every']}"
    if inference.get("previous_every", 1) > 1:
        adapted += f", the previous frame renewed every {inference['previous_every']}"
    if inference.get("min_piece", 0) > 0:
        adapted += f", mask pieces under {inference['min_piece']:g} of the largest dropped"
    if inference.get("redetect"):
        adapted += ", an emptied mask looked for again by the object's look"
    seeds = card.details.get("adaptation_seeds") if inference.get("adapt_steps") else None
    over = f", mean of {len(seeds)} adaptation seeds" if isinstance(seeds, list) and len(seeds) > 1 else ""
    score = f" (held-out DAVIS test J&F {scores['J&F-Mean']:.3f}{where}{adapted}{over})" if "J&F-Mean" in scores else ""
    return f", {card.name}{score}"

