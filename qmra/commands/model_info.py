"""``qmra model``: parameter counts of a network configuration, or what a weights file holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from qmra.errors import QmraError

#: ``--weights`` alone: the weights qmra ships.
SHIPPED = "shipped"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("model", help="print the parameter counts of a network configuration, or what a "
                                               "weights file holds")
    from qmra.model.config import ModelConfig
    from qmra.options import add_options

    add_options(parser.add_argument_group("the network configuration (without --weights)"), ModelConfig)
    parser.add_argument("--weights", nargs="?", const=SHIPPED, metavar="FILE",
                        help="describe a qmra checkpoint instead (alone: the shipped weights): its network and parameter "
                             "counts, the inference settings it recommends and its recorded test score")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.model import QMRA, ModelConfig
    from qmra.options import from_options, given_options

    if args.weights is None:
        config = from_options(args, ModelConfig)
    elif given_options(args, ModelConfig):
        raise QmraError("--weights describes the checkpoint's own network: give it without network options")
    else:
        config = _describe_weights(args.weights)
    model = QMRA(config)
    print(f"QMRA backbone={config.backbone} variant={config.variant}")
    total = 0
    for name, child in model.named_children():
        count = sum(p.numel() for p in child.parameters())
        total += count
        print(f"  {name:<20} {count / 1e6:8.2f} M")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = " with frozen BatchNorm" if config.freeze_batchnorm else ""
    print(f"  {'total':<20} {total / 1e6:8.2f} M ({trainable / 1e6:.2f} M trainable{frozen})")
    return 0


def _describe_weights(weights: str):
    """Print what the weights file's card says (name, recommended settings, test score); its network."""
    from qmra.inference.card import DEFAULT_WEIGHTS, read_card
    from qmra.inference.settings import InferenceSettings
    from qmra.options import declared_options, flag_of

    path = DEFAULT_WEIGHTS if weights == SHIPPED else Path(weights)
    card = read_card(path)
    print(f"{card.name or 'a qmra checkpoint without a card'}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    reference = InferenceSettings()
    changed = [f"{flag_of(field, opt)} ({opt.shown(card.recommended[field.name])})"
               for field, opt in declared_options(InferenceSettings)
               if field.name in card.recommended and getattr(reference, field.name) != card.recommended[field.name]]
    print(f"recommends, beside qmra's reference settings: {', '.join(changed) if changed else 'nothing'}")
    test = card.scores.get("test_scores") or {}
    seed = (test.get("by_seed") or {}).get("0", {})
    if "J&F-Mean" in test:
        parts = ", ".join(f"{key} {seed[key] * 100:.1f}" for key in ("J-Mean", "F-Mean") if key in seed)
        print(f"test J&F {test['J&F-Mean'] * 100:.1f}{f' ({parts})' if parts else ''}, recorded on its card")
    return card.config

