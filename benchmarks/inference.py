"""Inference speed and memory of the real session on a synthetic clip.

Speed (median seconds per frame after one warm-up frame, and one backbone pass measured in the
same run):

    .venv/bin/python benchmarks/inference.py speed --size 480x854 --backbones resnet50,resnet18 --objects 1,3 --frames 4

Memory (peak resident memory of the process after 100 and after N frames, and the bytes held in
the session's memory bank):

    .venv/bin/python benchmarks/inference.py memory --size 120x216 --backbone resnet18 --frames 2000

Random weights (speed and memory do not depend on them). Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.inference import InferenceSettings, Segmenter, random_model
from qmra.model import ModelConfig


def _session(backbone: str, video: SyntheticVideo, objects: int, settings: InferenceSettings, frames=None):
    segmenter = Segmenter(random_model(ModelConfig(backbone=backbone)), settings=settings)
    source = frames if frames is not None else (video.image(i) for i in range(video.num_frames))
    session = segmenter.start(source)
    for object_id, box in list(video.first_boxes().items())[:objects]:
        session.add_box(object_id, box)
    return segmenter, session


def speed(args: argparse.Namespace) -> dict:
    height, width = (int(v) for v in args.size.split("x"))
    results = {}
    for backbone in args.backbones.split(","):
        for objects in (int(n) for n in args.objects.split(",")):
            video = SyntheticVideo(SyntheticConfig(height, width, args.frames + 1, max(objects, 1), 1, seed=0))
            frames = [video.image(i) for i in range(video.num_frames)]
            segmenter, session = _session(backbone, video, objects, InferenceSettings(), frames)
            times, start = [], time.perf_counter()
            for index, _ in session.propagate():
                now = time.perf_counter()
                if index > 0:  # frame 0 initialises the objects and warms up
                    times.append(now - start)
                start = now
            prepared, _ = segmenter.model.prepare(torch.rand(1, 3, height, width))
            with torch.inference_mode():
                segmenter.model.encode_query(prepared)
                backbone_times = []
                for _ in range(3):
                    t = time.perf_counter()
                    segmenter.model.encode_query(prepared)
                    backbone_times.append(time.perf_counter() - t)
            frame_s, backbone_s = statistics.median(times), statistics.median(backbone_times)
            results[f"{backbone}/{objects}"] = {"frame_s": frame_s, "fps": 1 / frame_s, "backbone_s": backbone_s,
                                                "ratio": frame_s / backbone_s}
            print(f"{backbone:<9} {objects} object(s): {frame_s:.2f} s/frame ({1 / frame_s:.3f} FPS), "
                  f"backbone pass {backbone_s:.3f} s, ratio {frame_s / backbone_s:.1f}", flush=True)
    return results


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(args: argparse.Namespace) -> dict:
    height, width = (int(v) for v in args.size.split("x"))
    video = SyntheticVideo(SyntheticConfig(height, width, args.frames, 1, 1, seed=0))
    _, session = _session(args.backbone, video, 1, InferenceSettings())
    marks = {}
    start = time.perf_counter()
    for index, _ in session.propagate():
        if index + 1 in (100, args.frames):
            marks[index + 1] = {"peak_rss_mib": peak_rss_mib(), "memory_bank_mib": session.memory_nbytes() / 2**20,
                                "memory_frames": len(session.memory_frames(1))}
            print(f"after {index + 1} frames: peak RSS {marks[index + 1]['peak_rss_mib']:.0f} MiB, memory bank "
                  f"{marks[index + 1]['memory_bank_mib']:.1f} MiB in {marks[index + 1]['memory_frames']} frames "
                  f"({(time.perf_counter() - start) / (index + 1):.3f} s/frame)", flush=True)
    first, last = marks[100]["peak_rss_mib"], marks[args.frames]["peak_rss_mib"]
    print(f"peak after {args.frames} frames / after 100 frames = {last / first:.3f}")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    s = modes.add_parser("speed")
    s.add_argument("--size", default="480x854")
    s.add_argument("--backbones", default="resnet50,resnet18")
    s.add_argument("--objects", default="1,3")
    s.add_argument("--frames", type=int, default=4, help="timed frames after the first")
    m = modes.add_parser("memory")
    m.add_argument("--size", default="120x216")
    m.add_argument("--backbone", default="resnet18")
    m.add_argument("--frames", type=int, default=2000)
    for p in (s, m):
        p.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}", flush=True)
    results = speed(args) if args.mode == "speed" else memory(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
