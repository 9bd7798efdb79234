"""Two reference predictions that need no model, scored with qmra eval's metrics.

- still box: each object's first-frame box, filled, held still on every frame;
- true box: the tight box of each frame's true mask, filled (an upper bound for box-shaped output).

    .venv/bin/python benchmarks/box_baselines.py --davis ../shared/data/davis2016 --out bench-results/baselines
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from qmra.data import DavisDataset, box_from_mask, render_box_map, write_palette_png
from qmra.evaluation import evaluate_davis


def write_baselines(davis: DavisDataset, out: Path) -> None:
    for sequence in davis:
        first = sequence.labels(sequence.annotated_indices[0])
        object_ids = range(1, int(first.max()) + 1)
        size = first.shape
        still = {i: box_from_mask(first == i) for i in object_ids}
        for index in range(sequence.num_frames):
            truth = sequence.labels(index)
            for name, boxes in (("still-box", still), ("true-box", {i: box_from_mask(truth == i) for i in object_ids})):
                labels = np.zeros(size, np.uint8)
                for object_id, box in boxes.items():  # later ids drawn over earlier ones where boxes overlap
                    labels[render_box_map(box, size) > 0] = object_id
                write_palette_png(out / name / sequence.name / f"{sequence.frame_names[index]}.png", labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True)
    parser.add_argument("--out", default="bench-results/baselines")
    parser.add_argument("--sequences", default=None, help="comma-separated (default: all)")
    args = parser.parse_args()
    davis = DavisDataset(args.davis, sequences=args.sequences.split(",") if args.sequences else None)
    out = Path(args.out)
    write_baselines(davis, out)
    for name in ("still-box", "true-box"):
        start = time.perf_counter()
        result = evaluate_davis(davis, out / name, processes=2)
        seconds = time.perf_counter() - start
        result.write_csvs(out / name)
        print(f"{name}: scored {len(result.objects)} objects in {seconds:.1f} s")
        print(result.table(name))


if __name__ == "__main__":
    main()
