"""The CPU memory's two layouts timed against each other: features kept in place of values
(:meth:`qmra.model.QueryMemoryAggregation.keeps_features`, the default on a CPU) and values kept as
before. Two sessions of the shipped weights and settings run the same synthetic 854×480 clip in one
process, their frames interleaved, so that a shared machine's drift hits both alike.

    .venv/bin/python -m benchmarks.memory_layout_ab --objects 3 --frames 12

prints each layout's median time per frame over ``--frames`` frames after ``--warmup`` (85: every
object's memory full with the shipped schedule). On a GPU, ``--device cuda --precision bf16
--everywhere`` keeps features on the fused (SDPA) read too, which then reads 352 channels in one
head instead of 512 in four key-wide ones: the measurement that decides whether GPUs should.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Iterator

from qmra.benchmark import ping_pong, synthetic_clip
from qmra.data.frames import ArrayFrames
from qmra.inference import Segmenter
from qmra.inference.card import read_card
from qmra.model import qma
from qmra.model.qma import ReadMode
from qmra.presets import PRESETS, get_preset

LAYOUTS = ("features", "values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1)
    parser.add_argument("--frames", type=int, default=20, help="timed frames per layout")
    parser.add_argument("--warmup", type=int, default=85)
    parser.add_argument("--weights", default="qmra/weights/qmra-default.safetensors")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--preset", choices=tuple(PRESETS), help="its settings instead of those the weights recommend")
    parser.add_argument("--everywhere", action="store_true",
                        help="keep features whatever the read's kernel (by default only for the matmul kernel)")
    args = parser.parse_args()
    card = read_card(args.weights)
    base = card.settings if args.preset is None else get_preset(args.preset).settings
    settings = dataclasses.replace(base, precision=args.precision)
    segmenter = Segmenter.from_checkpoint(card, args.device, settings)
    clip = synthetic_clip(854, 480, 40, args.objects)
    images = [clip.image(i) for i in range(clip.num_frames)]
    boxes = list(clip.first_boxes().items())[: args.objects]

    # Memory entries are made per frame, so the layout in force when a session steps is the one it keeps.
    keeps_features = qma.QueryMemoryAggregation.keeps_features
    current = {"layout": "features"}

    def keeps(self: qma.QueryMemoryAggregation, read: ReadMode, device) -> bool:
        if args.everywhere:  # as if the read ran on the matmul kernel
            read = dataclasses.replace(read, kernel="matmul")
        return current["layout"] == "features" and keeps_features(self, read, device)

    qma.QueryMemoryAggregation.keeps_features = keeps  # type: ignore[method-assign]
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
