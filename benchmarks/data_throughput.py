"""Training-clip throughput and video decoding speed.

    .venv/bin/python benchmarks/data_throughput.py --davis ../shared/data/davis2016
    .venv/bin/python benchmarks/data_throughput.py --data flying:.flying-split/train@5 --data davis:.device-small/davis@2 ...

- with --data: clips per second of that mix of ``qmra train`` data specs, in batches of --batch, in
  one process (one thread, as a DataLoader worker has) and through a DataLoader with --workers
  (nothing else is measured);
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

import torch
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


def mix_throughput(specs: list[str], size: int, batch: int, batches: int, workers: int) -> None:
    """Clips per second of a ``qmra train`` data mix, batched as the trainer batches it."""
    from qmra.training.mixing import MixedClips, SampleNumbers
    from qmra.training.specs import DataSpec

    parsed = [DataSpec.parse(text) for text in specs]
    settings = ClipSettings(size=(size, size))
    clips = MixedClips([spec.build(settings, index) for index, spec in enumerate(parsed)], [spec.weight for spec in parsed], 0)
    threads = torch.get_num_threads()
    print(f"clips per second of {' '.join(specs)} at {size}x{size}, batches of {batch} ({batches} timed)")
    for count in (0, workers):
        if count == 0:
            torch.set_num_threads(1)  # what each DataLoader worker runs with
        loader = DataLoader(clips, batch_size=batch, sampler=SampleNumbers(0), num_workers=count,
                            persistent_workers=count > 0)
        batch_iterator = iter(loader)
        for _ in range(max(1, count)):  # each worker's first batch: start-up, not throughput
            next(batch_iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(batch_iterator)
        rate = batches * batch / (time.perf_counter() - start)
        torch.set_num_threads(threads)
        label = "1 process, 1 thread" if count == 0 else f"DataLoader, {count} workers"
        print(f"  {label:<24} {rate:6.1f} clips/s ({rate / batch:.2f} batches/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis", help="a DAVIS root, e.g. ../shared/data/davis2016 (required without --data)")
    parser.add_argument("--data", action="append", metavar="SPEC", help="a qmra train data spec of the mix to time (repeat)")
    parser.add_argument("--size", type=int, default=384, help="with --data: clip frames are SIZE×SIZE")
    parser.add_argument("--batch", type=int, default=16, help="with --data: clips per batch")
    parser.add_argument("--batches", type=int, default=8, help="with --data: batches timed")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequence", default="breakdance")
    args = parser.parse_args()
    if args.data:
        mix_throughput(args.data, args.size, args.batch, args.batches, args.workers)
        return
    if not args.davis:
        parser.error("--davis is required without --data")

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
