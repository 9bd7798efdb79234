"""Throughput of many short videos: `qmra batch` (local workers, several videos per worker, local
Ray) against a shell loop over `qmra segment`, with the shipped weights at their recommended settings.

Makes ``--clips`` mp4 clips of ``--frames`` frames cut from the DAVIS 2016 sequences in turn (each
object from the tight box of its first mask), then times each mode over all of them, one mode after
the other, and writes frames per second, videos per hour and the ratio to the loop:

    .venv/bin/python -m benchmarks.batch_throughput --davis ../shared/data/davis2016 --work /tmp/batch-bench \\
        --clips 20 --frames 10 --modes loop,batch1,batch2,ray --json batch-throughput.json [--args '--adapt 0']

On a GPU machine (no DAVIS there): make the clips here with ``--folders --modes ''`` (JPEG folders: no
PyAV needed there), carry ``--work`` along, and run ``--work DIR --warmup --baseline batch1x1 --modes
batch1x1,batch1x4,batch1x16,batch4,batch16 --args '--device cuda --adapt 0'`` there (one worker of 1, 4
and 16 videos at once, their query encodings batched; then 4 and 16 worker processes sharing the GPU).
Nothing is chosen from these numbers but the default worker count; no accuracy is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np



def make_clips(davis: Path, work: Path, clips: int, frames: int, folders: bool = False,
               size: tuple[int, int] | None = None) -> Path:
    """``clips`` videos cut from the DAVIS sequences in turn, and their manifest; returns it. Each is an
    mp4 file, or with ``folders`` a folder of JPEG frames (for a machine without PyAV); ``size``
    (width, height in pixels) resizes the frames and the boxes (a downscaled data pack made full size)."""
    from PIL import Image

    from qmra.data import DavisDataset, box_from_mask
    from qmra.data.video_writer import Mp4Writer

    sequences = list(DavisDataset(davis))
    work.mkdir(parents=True, exist_ok=True)
    entries = []
    for number in range(clips):
        sequence = sequences[number % len(sequences)]
        start = (number // len(sequences)) * frames
        images = [sequence.image(index) for index in range(start, start + frames)]
        labels = sequence.labels(start) > 0
        if size is not None:
            images = [np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)) for image in images]
            labels = np.asarray(Image.fromarray(labels).resize(size, Image.NEAREST))
        path = work / (f"clip{number:02d}" if folders else f"clip{number:02d}.mp4")
        if folders:
            path.mkdir(exist_ok=True)
            for index, image in enumerate(images):
                Image.fromarray(image).save(path / f"{index:05d}.jpg", quality=90)
        else:
            writer = Mp4Writer(path, images[0].shape[1], images[0].shape[0], 24.0)
            for image in images:
                writer.write(image)
            writer.close()
        box = box_from_mask(labels)
        entries.append({"video": path.name, "id": path.name.removesuffix(".mp4"), "boxes": [list(box.as_tuple())]})
    manifest = work / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return manifest


def _run(command: list[str], deadline: float | None) -> None:
    """Runs ``command`` in its own process group; past ``deadline`` (a perf_counter time) the whole group
    gets SIGTERM (as a batch system stops a job) and TimeoutError is raised."""
    process = subprocess.Popen(command, start_new_session=True)
    try:
        code = process.wait(None if deadline is None else max(deadline - time.perf_counter(), 0.1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        raise TimeoutError from None
    if code:
        raise subprocess.CalledProcessError(code, command)


def run_mode(mode: str, manifest: Path, out: Path, extra: list[str], timeout: float | None = None) -> float:
    """Seconds the mode takes over every clip of ``manifest``, start-up included: ``loop`` (one
    ``qmra segment`` process per clip, one after the other), ``batchN`` (``qmra batch --workers N``),
    ``batchNxK`` (N workers of K videos at once: ``--videos-per-worker K``) or ``rayN``/``rayNxK``
    (the same as Ray actors on a local instance; ``ray``: 2 actors)."""
    shutil.rmtree(out, ignore_errors=True)
    qmra = [sys.executable, "-m", "qmra"]
    start = time.perf_counter()
    deadline = None if timeout is None else start + timeout
    if mode == "loop":
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            box = ",".join(f"{v:g}" for v in entry["boxes"][0])
            _run(qmra + ["segment", str(manifest.parent / entry["video"]), "--box", box,
                         "--out", str(out / entry["id"]), "--quiet", *extra], deadline)
    else:
        count, _, lanes = (mode.removeprefix("batch").removeprefix("ray") or "2").partition("x")
        workers = (["--ray"] if mode.startswith("ray") else []) + ["--workers", count]
        workers += ["--videos-per-worker", lanes] if lanes else []
        _run(qmra + ["batch", str(manifest), "--out", str(out), "--quiet", *workers, *extra], deadline)
    return time.perf_counter() - start


def _first_clip(manifest: Path) -> Path:
    """A manifest of ``manifest``'s first clip alone, beside it."""
    first = manifest.with_name("first.jsonl")
    first.write_text(manifest.read_text().splitlines()[0] + "\n")
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, help="make the clips from here (without it: reuse WORK/manifest.jsonl)")
    parser.add_argument("--work", required=True, type=Path, help="folder for the clips and the results")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--modes", default="loop,batch1,batch2,ray")
    parser.add_argument("--folders", action="store_true", help="clips as folders of JPEG frames, not mp4 files")
    parser.add_argument("--resize", metavar="WxH", help="resize the clips' frames to this size in pixels")
    parser.add_argument("--timeout", type=float, help="seconds one mode may take; a slower one is cut off and skipped")
    parser.add_argument("--warmup", action="store_true",
                        help="segment the first clip once, untimed, so that the first mode does not pay for cold caches")
    parser.add_argument("--baseline", default="loop", help="the mode the others' throughput is compared with")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--args", default="", help="more flags for every run, e.g. '--adapt 0'")
    args = parser.parse_args()
    if args.davis is not None:
        size = tuple(int(v) for v in args.resize.split("x")) if args.resize else None
        manifest = make_clips(args.davis, args.work, args.clips, args.frames, args.folders, size)
    else:  # clips made on another machine (a GPU machine has no DAVIS copy): carry WORK there
        manifest = args.work / "manifest.jsonl"
        if not manifest.is_file():
            parser.error(f"no {manifest}: give --davis to make the clips")
        args.clips = len(manifest.read_text().splitlines())
    frames = args.clips * args.frames
    if args.warmup:
        run_mode("loop", _first_clip(manifest), args.work / "out-warmup", args.args.split(), args.timeout)
    results = {"clips": args.clips, "frames_per_clip": args.frames, "args": args.args, "modes": {}}
    for mode in filter(None, args.modes.split(",")):
        try:
            seconds = run_mode(mode, manifest, args.work / f"out-{mode}", args.args.split(), args.timeout)
        except TimeoutError:
            print(f"{mode}: cut off after {args.timeout:g} s", flush=True)
            results["modes"][mode] = {"timed_out_after_s": args.timeout}
            continue
        results["modes"][mode] = {"seconds": round(seconds, 1), "frames_per_s": round(frames / seconds, 3),
                                  "videos_per_hour": round(args.clips / seconds * 3600, 1)}
        print(f"{mode}: {seconds:.1f} s, {frames / seconds:.2f} frames/s, {args.clips / seconds * 3600:.0f} videos/h",
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    base = results["modes"].get(args.baseline, {}).get("seconds")
    if base:
        for mode, measured in results["modes"].items():
            if "seconds" in measured:
                measured[f"vs_{args.baseline}"] = round(base / measured["seconds"], 3)
                print(f"{mode}: {measured[f'vs_{args.baseline}']:.2f}x the throughput of {args.baseline}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
