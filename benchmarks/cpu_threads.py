"""CPU threading on an idle and on a busy machine: qmra's default thread choice against fixed counts.

Each setting runs in its own process (OpenMP reads its environment once), segmenting the same clip
with the shipped weights at their recommended working size (adaptation off: it is not what this
measures), and reports frames per second over the frames after the first. "Busy" starts BUSY
processes that spin on the CPU beside it, as a laptop's or a shared server's other work does.

    .venv/bin/python -m benchmarks.cpu_threads --frames 12 --repeats 3 --json threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import sys, time, json
import numpy as np
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.card import shipped_card
from qmra.data import SyntheticConfig, SyntheticVideo
from dataclasses import replace

threads = None if sys.argv[1] == "default" else int(sys.argv[1])
frames = int(sys.argv[2])
video = SyntheticVideo(SyntheticConfig(480, 854, frames, num_objects=1, seed=0))
settings = replace(shipped_card().settings, adapt_steps=0, threads=threads)
segmenter = Segmenter(settings=settings)
session = segmenter.start([video.image(i) for i in range(frames)], prompts={1: video.first_boxes()[1]})
stamps = []
for _, result in session.propagate():
    stamps.append(time.perf_counter())
print(json.dumps({"threads": segmenter.threads.count, "fps": (len(stamps) - 1) / (stamps[-1] - stamps[0])}))
"""


def spin() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(setting: str, frames: int) -> dict:
    output = subprocess.run([sys.executable, "-c", CHILD, setting, str(frames)], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside it in the busy case")
    parser.add_argument("--settings", default="default,1,2", help="thread counts to compare ('default': qmra's choice)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for load in ("idle", "busy"):
        spinners = [spin() for _ in range(args.busy)] if load == "busy" else []
        try:
            if spinners:
                time.sleep(65)  # the one-minute load average must see them, as it would on a busy machine
            for setting in args.settings.split(","):
                runs = [measure(setting, args.frames) for _ in range(args.repeats)]
                fps = [r["fps"] for r in runs]
                results.setdefault(load, {})[setting] = {"threads": runs[0]["threads"], "fps": fps,
                                                         "median_fps": statistics.median(fps)}
                print(f"{load:5s} threads={setting:8s} (ran {runs[0]['threads']}): median {statistics.median(fps):.2f} FPS "
                      f"({', '.join(f'{f:.2f}' for f in fps)})", flush=True)
        finally:
            for process in spinners:
                process.kill()
        if load == "busy":
            continue
        time.sleep(1)
    for load, by_setting in results.items():
        best = max(v["median_fps"] for v in by_setting.values())
        default = by_setting.get("default", {}).get("median_fps")
        if default:
            print(f"{load}: default is {best / default:.2f}x slower than the best setting")
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
