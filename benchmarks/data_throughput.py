"""Training-clip throughput and video decoding speed.

    .venv/bin/python benchmarks/data_throughput.py --davis ../shared/data/davis2016

- clips per second at 384×384 for each sampler, in one process and through a DataLoader with
  --workers processes (median of --repeats timed passes over --clips clips);
- decoding speed of an 854×480 H.264 mp4 made from a DAVIS sequence (frames per second), and of
  the same frames read from the JPEG folder.
Not run by CI.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from qmra.data import (ClipSettings, CompositeClipDataset, DavisDataset, Mp4Writer, SequenceFrames, StaticClipDataset,
                       VideoClipDataset, open_frames)


def clips_per_second(dataset, clips: int, workers: int, repeats: int) -> float:
    rates = []
    for repeat in range(repeats):
        dataset.set_epoch(repeat)
        start = time.perf_counter()
        if workers == 0:
            for index in range(clips):
                dataset[index]
        else:
            loader = DataLoader(dataset, batch_size=1, num_workers=workers)
            for count, _ in enumerate(loader, start=1):
                if count >= clips:
                    break
        rates.append(clips / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", required=True, help="a DAVIS root, e.g. ../shared/data/davis2016")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequence", default="breakdance")
    args = parser.parse_args()

    sequences = list(DavisDataset(args.davis))
    frames = SequenceFrames(sequences, step=5)
    settings = ClipSettings(size=(384, 384))
    datasets = {
        "video": VideoClipDataset(sequences, length=10_000, settings=settings),
        "static": StaticClipDataset(frames, length=10_000, settings=settings),
        "composite": CompositeClipDataset(frames, frames, length=10_000, settings=settings),
    }
    print(f"clips per second at 384x384 (3 frames each), median of {args.repeats} passes of {args.clips} clips")
    for name, dataset in datasets.items():
        single = clips_per_second(dataset, args.clips, 0, args.repeats)
        loader = clips_per_second(dataset, args.clips, args.workers, args.repeats)
        print(f"  {name:<10} 1 process {single:6.1f}   DataLoader, {args.workers} workers {loader:6.1f}")

    sequence = DavisDataset(args.davis, sequences=[args.sequence]).sequence(args.sequence)
    height, width = sequence.size
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{args.sequence}.mp4"
        with Mp4Writer(path, width, height, fps=24) as writer:
            for index in range(sequence.num_frames):
                writer.write(sequence.image(index))
        for label, source in (("mp4 (H.264)", path), ("JPEG folder", sequence.frames_dir)):
            rates = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                count = sum(1 for _ in open_frames(source))
                rates.append(count / (time.perf_counter() - start))
            print(f"read {width}x{height} {label:<12} {statistics.median(rates):6.1f} frames/s ({count} frames)")


if __name__ == "__main__":
    main()
