"""How well an object that starts on a later frame is followed: on each DAVIS sequence, a decoy box
(background, the object's box mirrored through the frame's centre) starts on frame 0 and the real
object is boxed on frame ``--late``; the real object's own mask (p > 0.5, before the merge) is
scored by J on the frames after its box (the last frame excluded, as in DAVIS).

DAVIS 2016 has one object per video, all starting on frame 0: this is how a later-starting object
is measured here. Choose nothing on the test sequences with it.

    .venv/bin/python -m benchmarks.late_start --davis ../shared/data/davis2016 --sequences goat,parkour,scooter-black
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qmra.data import DavisDataset
from qmra.data.boxes import Box, box_from_mask
from qmra.evaluation import region_similarity
from qmra.inference import Segmenter


def decoy_box(box: Box, width: int, height: int) -> Box:
    """``box`` mirrored through the frame's centre, clipped to the frame: background of the same size."""
    cx, cy = width - box.center[0], height - box.center[1]
    return Box(max(0.0, cx - box.width / 2), max(0.0, cy - box.height / 2), min(width, cx + box.width / 2),
               min(height, cy + box.height / 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True)
    parser.add_argument("--sequences", required=True, help="comma-separated (validation ones: this is for choosing)")
    parser.add_argument("--late", type=int, default=10, help="the frame the real object is boxed on (default 10)")
    args = parser.parse_args()
    davis = DavisDataset(args.davis, sequences=args.sequences.split(","))
    segmenter = Segmenter(device="cpu")  # the shipped weights with their recommended settings
    scores = []
    for name in davis.names:
        sequence = davis.sequence(name)
        truth = [sequence.labels(i) > 0 for i in range(sequence.num_frames)]  # booleans: small
        height, width = truth[0].shape
        session = segmenter.start(sequence.frames_dir, prompts=[  # frames streamed from disk, as users run it
            (1, decoy_box(box_from_mask(truth[0]), width, height), 0), (2, box_from_mask(truth[args.late]), args.late)])
        started = time.perf_counter()
        j = [region_similarity(result.object_probabilities[2] > 0.5, truth[i]) for i, result in session.propagate()
             if args.late < i < sequence.num_frames - 1]
        scores.append(float(np.mean(j)))
        print(f"{name}: J {scores[-1]:.3f}, last quarter {np.mean(j[-max(1, len(j) // 4):]):.3f} "
              f"({time.perf_counter() - started:.0f} s; adapted on frames {sorted(session.adaptations)})", flush=True)
    print(f"mean J {np.mean(scores):.3f} over {len(scores)} sequence(s)")


if __name__ == "__main__":
    main()
