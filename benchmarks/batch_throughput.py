"""Throughput of many short videos: `qmra batch` (local workers, several videos per worker, local
Ray) against a shell loop over `qmra segment`, with the shipped weights at their recommended settings.

Makes ``--clips`` mp4 clips of ``--frames`` frames cut from the DAVIS 2016 sequences in turn (each
object from the tight box of its first mask), then times each mode over all of them, one mode after
the other, and writes frames per second, videos per hour and the ratio to the loop:

    .venv/bin/python -m benchmarks.batch_throughput --davis ../shared/data/davis2016 --work /tmp/batch-bench \\
        --clips 20 --frames 10 --modes loop,batch1,batch2,ray --json batch-throughput.json [--args '--adapt 0']

On a GPU machine (no DAVIS there): make the clips here with ``--modes ''``, carry ``--work`` along,
and run ``--work DIR --modes batch1x1,batch1x4,batch1x16,batch4,batch16 --args '--device cuda --adapt 0'``
there (one worker of 1, 4 and 16 videos at once, their query encodings batched; then 4 and 16
worker processes sharing the GPU).
Nothing is chosen from these numbers but the default worker count; no accuracy is measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path



def make_clips(davis: Path, work: Path, clips: int, frames: int) -> Path:
    """``clips`` mp4 files cut from the DAVIS sequences in turn, and their manifest; returns it."""
    from qmra.data import DavisDataset, box_from_mask
    from qmra.data.video_writer import Mp4Writer

    sequences = list(DavisDataset(davis))
    work.mkdir(parents=True, exist_ok=True)
    entries = []
    for number in range(clips):
        sequence = sequences[number % len(sequences)]
        start = (number // len(sequences)) * frames
        path = work / f"clip{number:02d}.mp4"
        first = sequence.image(start)
        writer = Mp4Writer(path, first.shape[1], first.shape[0], 24.0)
        for index in range(start, start + frames):
            writer.write(sequence.image(index))
        writer.close()
        box = box_from_mask(sequence.labels(start) > 0)
        entries.append({"video": path.name, "id": path.stem, "boxes": [list(box.as_tuple())]})
    manifest = work / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return manifest


def run_mode(mode: str, manifest: Path, out: Path, extra: list[str]) -> float:
    """Seconds the mode takes over every clip of ``manifest``, start-up included: ``loop`` (one
    ``qmra segment`` process per clip, one after the other), ``batchN`` (``qmra batch --workers N``),
    ``batchNxK`` (N workers of K videos at once: ``--videos-per-worker K``) or ``rayN``/``rayNxK``
    (the same as Ray actors on a local instance; ``ray``: 2 actors)."""
    shutil.rmtree(out, ignore_errors=True)
    qmra = [sys.executable, "-m", "qmra"]
    start = time.perf_counter()
    if mode == "loop":
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            box = ",".join(f"{v:g}" for v in entry["boxes"][0])
            subprocess.run(qmra + ["segment", str(manifest.parent / entry["video"]), "--box", box,
                                   "--out", str(out / entry["id"]), "--quiet", *extra], check=True)
    else:
        count, _, lanes = (mode.removeprefix("batch").removeprefix("ray") or "2").partition("x")
        workers = (["--ray"] if mode.startswith("ray") else []) + ["--workers", count]
        workers += ["--videos-per-worker", lanes] if lanes else []
        subprocess.run(qmra + ["batch", str(manifest), "--out", str(out), "--quiet", *workers, *extra], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, help="make the clips from here (without it: reuse WORK/manifest.jsonl)")
    parser.add_argument("--work", required=True, type=Path, help="folder for the clips and the results")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--modes", default="loop,batch1,batch2,ray")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--args", default="", help="more flags for every run, e.g. '--adapt 0'")
    args = parser.parse_args()
    if args.davis is not None:
        manifest = make_clips(args.davis, args.work, args.clips, args.frames)
    else:  # clips made on another machine (a GPU machine has no DAVIS copy): carry WORK there
        manifest = args.work / "manifest.jsonl"
        if not manifest.is_file():
            parser.error(f"no {manifest}: give --davis to make the clips")
        args.clips = len(manifest.read_text().splitlines())
    frames = args.clips * args.frames
    results = {"clips": args.clips, "frames_per_clip": args.frames, "args": args.args, "modes": {}}
    for mode in filter(None, args.modes.split(",")):
        seconds = run_mode(mode, manifest, args.work / f"out-{mode}", args.args.split())
        results["modes"][mode] = {"seconds": round(seconds, 1), "frames_per_s": round(frames / seconds, 3),
                                  "videos_per_hour": round(args.clips / seconds * 3600, 1)}
        print(f"{mode}: {seconds:.1f} s, {frames / seconds:.2f} frames/s, {args.clips / seconds * 3600:.0f} videos/h",
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    loop = results["modes"].get("loop")
    if loop:
        for mode, measured in results["modes"].items():
            measured["vs_loop"] = round(loop["seconds"] / measured["seconds"], 3)
            print(f"{mode}: {measured['vs_loop']:.2f}x the loop's throughput")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
