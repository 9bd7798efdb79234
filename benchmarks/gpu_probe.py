"""Where a frame's time goes on a GPU: is the device busy, or waiting for the host?

For each speed configuration and object count, one session of the paper preset (random weights) on
a synthetic clip held in memory (the session alone, no I/O), in one process:

- ``model_fps``: frames per second over ``--frames`` frames after ``--warmup`` frames;
- from a profiled window of ``--profile-frames`` frames (device time): ``device_busy_ms`` (the sum
  of the kernels' time per frame: what the GPU must do), ``kernels`` launched per frame (inside CUDA
  graphs or not), ``host_wait_ms`` (time the host spent waiting for the device per frame: large
  when the device is the limit, near 0 when the host is), and the heaviest kernels;
- peak memory over long videos is ``qmra bench --memory-frames``'s measurement, not repeated here.

Every result is written to ``--out`` as a JSON line as soon as it exists (a time-out keeps the rest).

    python -m benchmarks.gpu_probe --device cuda --out probe.jsonl
    python -m benchmarks.gpu_probe --device cpu --size 160x96 --warmup 2 --frames 2 --configs fp32 --out /tmp/p.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from qmra.commands.common import parse_size
from qmra.data.frames import ArrayFrames
from qmra.benchmark import ping_pong, synthetic_clip
from qmra.inference.segmenter import Segmenter, random_model
from qmra.presets import get_preset

#: Speed configurations by name: InferenceSettings fields over the paper preset's.
CONFIGS = {
    "fp32": {},
    "bf16": {"precision": "bf16", "channels_last": True},
    "bf16-graphs": {"precision": "bf16", "channels_last": True, "compile": "reduce-overhead"},
    "bf16-compiled": {"precision": "bf16", "channels_last": True, "compile": "default"},
    # The same without queueing the next frame's encoding before a frame's results are waited for.
    "bf16-graphs-nolookahead": {"precision": "bf16", "channels_last": True, "compile": "reduce-overhead", "lookahead": False},
}
#: Host calls that wait for the device.
WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy", "cudaMemcpyAsync")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_window(frames, count: int, device: torch.device, table: Path | None = None) -> dict:
    """Device-busy and host-wait time per frame over the next ``count`` frames, and the top kernels;
    ``table``: also write the profiler's tables (host time, device time) there."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=activities) as profiler:
        started = time.perf_counter()
        for _ in range(count):
            next(frames)
        _sync(device)
        wall = (time.perf_counter() - started) / count
    kernels, waits, launches = {}, 0.0, 0
    for event in profiler.events():
        name, micros = event.name, event.time_range.elapsed_us()
        if event.device_type == torch.autograd.DeviceType.CUDA and not name.startswith("qmra/"):
            key = " ".join(name.split(" ")[:2]) if name.startswith(("Memcpy", "Memset")) else name
            total, calls = kernels.get(key, (0.0, 0))
            kernels[key] = (total + micros, calls + 1)
        elif name.startswith(WAITS):
            waits += micros
        elif name in ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cudaGraphLaunch"):
            launches += 1
    if table is not None:
        averages = profiler.key_averages()
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        table.write_text(averages.table(sort_by="cpu_time_total", row_limit=40, max_name_column_width=70) + "\n"
                         + averages.table(sort_by=sort, row_limit=40, max_name_column_width=70))
    busy = sum(total for total, _ in kernels.values())
    top = sorted(kernels.items(), key=lambda item: -item[1][0])[:15]
    return {"profiled_wall_ms": wall * 1000, "device_busy_ms": busy / 1000 / count,
            "kernels": sum(calls for _, calls in kernels.values()) / count, "host_launch_calls": launches / count,
            "host_wait_ms": waits / 1000 / count,
            "top_kernels": [{"name": name[:120], "ms_per_frame": round(total / 1000 / count, 3), "calls": calls / count}
                            for name, (total, calls) in top]}


def measure(name: str, overrides: dict, objects: int, args, clip, boxes, model, device) -> dict:
    from dataclasses import replace

    overrides = dict(overrides)
    lookahead = overrides.pop("lookahead", None)
    settings = replace(get_preset("paper").settings, **overrides)
    segmenter = Segmenter(model, device, settings)
    count = args.warmup + args.frames + args.profile_frames
    session = segmenter.start(ArrayFrames(ping_pong(clip, count)))
    if lookahead is not None:
        session.lookahead = lookahead
    for object_id, box in boxes[:objects]:
        session.add_box(object_id, box, predict=False)
    frames = session.propagate()
    result = {"config": name, "objects": objects}
    try:
        started = time.perf_counter()
        first = []
        for _ in range(args.warmup):
            next(frames)
            _sync(device)
            first.append(round(time.perf_counter() - started, 3))
        result["warmup_s"] = first
        _sync(device)
        started = time.perf_counter()
        for _ in range(args.frames):
            next(frames)
        _sync(device)
        result["model_fps"] = args.frames / (time.perf_counter() - started)
        if args.profile_frames:
            table = args.out.with_name(f"{args.out.stem}-{name}-{objects}.txt")
            result.update(profile_window(frames, args.profile_frames, device, table))
    finally:
        frames.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="854x480")
    parser.add_argument("--objects", default="1,3")
    parser.add_argument("--configs", default="bf16,bf16-graphs", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--profile-frames", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended as they come")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    height, width = parse_size(args.size)
    counts = [int(c) for c in args.objects.split(",")]
    clip_video = synthetic_clip(width, height, 60, max(counts))
    clip = [clip_video.image(i) for i in range(clip_video.num_frames)]
    boxes = list(clip_video.first_boxes().items())
    model = random_model(get_preset("paper").model)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def emit(line: dict) -> None:
        line = {"device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", **line}
        text = json.dumps(line)
        print(text, flush=True)
        with args.out.open("a") as handle:
            handle.write(text + "\n")

    for name in args.configs.split(","):
        for objects in counts:
            try:
                emit(measure(name, CONFIGS[name], objects, args, clip, boxes, model, device))
            except Exception as error:  # one failing configuration must not hide the others
                emit({"config": name, "objects": objects, "error": f"{type(error).__name__}: {error}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
