"""Show that training learns, on CPU in minutes: resnet18 on synthetic videos, J&F on held-out
synthetic clips (through the real inference path) against the still first-frame-box baseline.

    .venv/bin/python -m benchmarks.train_synthetic --out bench-results/train-synthetic

BatchNorm is trained (from scratch) and its statistics re-estimated on whole training videos before
each validation (qmra.training.batchnorm).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from qmra.data import DavisDataset
from qmra.evaluation import evaluate_davis
from qmra.model import ModelConfig
from qmra.training import DataSpec, TrainConfig, Trainer
from qmra.training.distributed import DistributedContext
from benchmarks.box_baselines import write_baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench-results/train-synthetic")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--lr-schedule", default="cosine")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    out = Path(args.out)
    model = ModelConfig(backbone="resnet18", decoder_channels=64, freeze_batchnorm=False)  # BatchNorm trained, from scratch
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, size=args.size, lr=args.lr, val_every=args.val_every,
                         save_every=args.val_every, workers=1, teacher_forcing=0.5, lr_schedule=args.lr_schedule,
                         warmup=args.warmup)
    trainer = Trainer(model, config, [DataSpec.parse("synthetic:64")], out, DistributedContext.from_environment("cpu"),
                      val=DataSpec.parse("synthetic:6"), resume=(out / "last.json").exists(), progress=True)
    trainer.run()
    validation = DavisDataset(out / "val-synthetic")
    write_baselines(validation, out / "baselines")
    still = evaluate_davis(validation, out / "baselines" / "still-box", processes=1).global_scores()
    with (out / "metrics.csv").open() as handle:
        curve = [(r["step"], r["val_jf"]) for r in csv.DictReader(handle) if r["val_jf"]]
    print("held-out synthetic J&F by step: " + ", ".join(f"{s}: {float(v):.3f}" for s, v in curve))
    print(f"still first-frame box on the same clips: J&F {still['J&F-Mean']:.3f} (J {still['J-Mean']:.3f}, F {still['F-Mean']:.3f})")


if __name__ == "__main__":
    main()
