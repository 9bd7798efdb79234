"""The CPU memory's two layouts timed against each other: features kept in place of values
(:meth:`qmra.model.QueryMemoryAggregation.keeps_features`, the default on a CPU) and values kept as
before. Two sessions of the shipped weights and settings run the same synthetic 854×480 clip in one
process, their frames interleaved, so that a shared machine's drift hits both alike.

    .venv/bin/python -m benchmarks.memory_layout_ab --objects 3 --frames 12

prints each layout's median time per frame over ``--frames`` frames after ``--warmup`` (85: every
object's memory full with the shipped schedule).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator

from qmra.benchmark import ping_pong, synthetic_clip
from qmra.data.frames import ArrayFrames
from qmra.inference import Segmenter
from qmra.model import qma

LAYOUTS = ("features", "values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=20, help="timed frames per layout")
    parser.add_argument("--warmup", type=int, default=85)
    parser.add_argument("--weights", default="qmra/weights/qmra-default.safetensors")
    args = parser.parse_args()
    segmenter = Segmenter.from_checkpoint(args.weights, "cpu")
    clip = synthetic_clip(854, 480, 40, args.objects)
    images = [clip.image(i) for i in range(clip.num_frames)]
    boxes = list(clip.first_boxes().items())[: args.objects]

    # Memory entries are made per frame, so the layout in force when a session steps is the one it keeps.
    keeps_features = qma.QueryMemoryAggregation.keeps_features
    current = {"layout": "features"}
    qma.QueryMemoryAggregation.keeps_features = (  # type: ignore[method-assign]
        lambda self, read, device: current["layout"] == "features" and keeps_features(self, read, device))
    runs: dict[str, Iterator] = {}
    for layout in LAYOUTS:
        current["layout"] = layout
        session = segmenter.start(ArrayFrames(ping_pong(images, args.warmup + args.frames + 1)), prompts=boxes)
        runs[layout] = session.propagate()
        next(runs[layout])
    seconds: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    for frame in range(args.warmup + args.frames):
        for layout in LAYOUTS if frame % 2 else LAYOUTS[::-1]:
            current["layout"] = layout
            started = time.perf_counter()
            next(runs[layout])
            seconds[layout].append(time.perf_counter() - started)
    for layout, times in seconds.items():
        timed = [1000 * t for t in times[args.warmup:]]
        low, _, high = statistics.quantiles(timed, n=4)
        print(f"{args.objects} object(s), memory of {layout}: median {statistics.median(timed):.0f} ms/frame "
              f"(quartiles {low:.0f}-{high:.0f}, {len(timed)} frames)")


if __name__ == "__main__":
    main()
