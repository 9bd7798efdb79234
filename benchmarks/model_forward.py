"""Per-frame CPU/GPU cost of the QMRA network, against one backbone pass measured in the same run.

    .venv/bin/python benchmarks/model_forward.py --size 480x854 --backbones resnet50,resnet18

For each backbone it times (median of --repeats runs after a warm-up):
- ``backbone``: one query-encoder pass (ResNet stem..layer3) on the prepared frame;
- ``frame``: ``QMRA.predict`` for one object against a memory of --memory-frames cached frames,
  which is what inference pays per frame (query encoding, stage-2 re-encoding, three decoders, CRM);
- ``memorize``: turning the stage-2 encoding into memory keys and values.
and prints parameter counts per variant. Not run by CI: timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch

from qmra.model import BACKBONES, QMRA, VARIANTS, Memory, ModelConfig


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_backbone(backbone: str, height: int, width: int, memory_frames: int, repeats: int, device: torch.device) -> dict[str, float]:
    model = QMRA(ModelConfig(backbone=backbone)).eval().to(device)
    frame = torch.rand(1, 3, height, width, device=device)
    prepared, padding = model.prepare(frame)
    box = torch.zeros(1, 1, height, width, device=device)
    box[..., height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    with torch.inference_mode():
        memory_frame = model.memorize(model.encode_memory(prepared, padding.pad(box)))
        memory = Memory.stack([memory_frame] * memory_frames)
        backbone_s = median_seconds(lambda: model.encode_query(prepared), repeats)
        frame_s = median_seconds(lambda: model.predict(prepared, padding, memory), repeats)
        output = model.predict(prepared, padding, memory)
        memorize_s = median_seconds(lambda: model.memorize(output.query_encoding), repeats)
    return {"backbone_s": backbone_s, "frame_s": frame_s, "memorize_s": memorize_s, "ratio": frame_s / backbone_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="480x854", help="HEIGHTxWIDTH")
    parser.add_argument("--backbones", default="resnet50,resnet18")
    parser.add_argument("--memory-frames", type=int, default=3, help="first + previous + one extra frame")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device)

    counts = {b: {v: sum(p.numel() for p in QMRA(ModelConfig(backbone=b, variant=v)).parameters()) for v in VARIANTS} for b in BACKBONES}
    print("parameters (millions)")
    print(f"{'variant':<16}" + "".join(f"{b:>10}" for b in BACKBONES))
    for variant in VARIANTS:
        print(f"{variant:<16}" + "".join(f"{counts[b][variant] / 1e6:>10.2f}" for b in BACKBONES))

    print(f"\nper-frame time at {height}x{width}, 1 object, {args.memory_frames} memory frames, "
          f"{torch.get_num_threads()} threads on {device}, median of {args.repeats}")
    timings = {}
    for backbone in args.backbones.split(","):
        timings[backbone] = t = time_backbone(backbone, height, width, args.memory_frames, args.repeats, device)
        print(f"{backbone:<10} frame {t['frame_s']:.3f} s ({1 / t['frame_s']:.2f} FPS)  backbone pass {t['backbone_s']:.3f} s  "
              f"ratio {t['ratio']:.2f}  memorize {t['memorize_s'] * 1000:.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": [height, width], "device": str(device), "threads": torch.get_num_threads(),
                       "parameters": counts, "timings": timings}, f, indent=2)


if __name__ == "__main__":
    main()
