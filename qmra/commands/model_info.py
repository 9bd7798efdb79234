"""``qmra model``: parameter counts of a network configuration."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("model", help="print the parameter counts of a network configuration")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--variant", default="full")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.model import QMRA, ModelConfig

    model = QMRA(ModelConfig(backbone=args.backbone, variant=args.variant))
    print(f"QMRA backbone={args.backbone} variant={args.variant}")
    total = 0
    for name, child in model.named_children():
        count = sum(p.numel() for p in child.parameters())
        total += count
        print(f"  {name:<20} {count / 1e6:8.2f} M")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"  {'total':<20} {total / 1e6:8.2f} M ({trainable / 1e6:.2f} M trainable with frozen BatchNorm)")
    return 0
