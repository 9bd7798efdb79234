"""Training steps per second (median over timed steps after one warm-up step), synthetic data.

    .venv/bin/python benchmarks/train_speed.py --backbones resnet18,resnet50 --sizes 384,128 --batch-size 4 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from qmra.model import ModelConfig
from qmra.training import DataSpec, TrainConfig, Trainer
from qmra.training.distributed import DistributedContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="resnet18,resnet50")
    parser.add_argument("--sizes", default="384,128")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    context = DistributedContext.from_environment(args.device)
    print(f"{torch.get_num_threads()} threads on {context.device}, batch {args.batch_size}, 2 memory frames + 1 query")
    for backbone in args.backbones.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as run_dir:
                config = TrainConfig(steps=args.steps + 1, batch_size=args.batch_size, size=size, save_every=10**9, workers=0)
                trainer = Trainer(ModelConfig(backbone=backbone), config, [DataSpec.parse("synthetic:4")], run_dir, context)
                batches = iter(trainer._loader())
                next_batch = [next(batches) for _ in range(args.steps + 1)]  # data loading is not timed
                replay = iter(next_batch)
                times = []
                for _ in range(args.steps + 1):
                    start = time.perf_counter()
                    trainer._train_step(replay, config.lr)
                    times.append(time.perf_counter() - start)
                median = statistics.median(times[1:])
                print(f"{backbone:<9} {size}x{size}: {1 / median:.3f} steps/s ({median:.2f} s/step)", flush=True)


if __name__ == "__main__":
    main()
