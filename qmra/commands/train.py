"""``qmra train``: the paper's two training stages, on any mix of data sources."""

from __future__ import annotations

import argparse

from qmra.commands.common import show_progress


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train QMRA (static and video clips, several GPUs, safe checkpoints)")
    parser.add_argument("--data", action="append", required=True, metavar="SPEC",
                        help="synthetic[:N] | davis:PATH[:seqs|:-seqs] | davis-static:PATH | composite:PATH | flying:PACK | "
                             "youtube-vos:PATH | images:PATH | coco:ANN.json:IMAGES, each optionally @WEIGHT; repeat to mix")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="last/best checkpoints, metrics.csv, curves.png")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step (effective batch = B × this)")
    parser.add_argument("--size", type=int, default=384, help="training frames are SIZE×SIZE (multiple of 16)")
    parser.add_argument("--backbone", default="resnet50", help="resnet18 | resnet34 | resnet50")
    parser.add_argument("--variant", default="full", help="full or a Table 3 ablation")
    parser.add_argument("--decoder-channels", type=int, default=256)
    parser.add_argument("--backbone-weights", metavar="FILE", help="a torchvision ResNet state dict (ImageNet), the usual start")
    parser.add_argument("--init", metavar="FILE", help="start from a qmra checkpoint (e.g. the static stage's best)")
    parser.add_argument("--val", metavar="SPEC", help="held-out videos: davis:PATH:seq1,seq2 or synthetic[:N]")
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--val-resolution", type=int, metavar="PIXELS",
                        help="validate with frames scaled to this short side (default: their own size)")
    parser.add_argument("--bn-calibration-videos", type=int, default=8, metavar="N",
                        help="with --train-batchnorm: re-estimate BatchNorm statistics on N whole training videos "
                             "before each validation and checkpoint (0: never)")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="end training after this many seconds (validation and saving not counted); a cosine "
                             "schedule then decays over the budget")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR where it stopped")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (with torchrun: one GPU per process)")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--lr-schedule", default="constant", help="constant (the paper) or cosine")
    parser.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    parser.add_argument("--teacher-forcing", type=float, default=0.5,
                        help="probability of giving stage 2 the true box instead of stage 1's (default 0.5)")
    parser.add_argument("--train-batchnorm", action="store_true", help="train BatchNorm (from scratch; default frozen)")
    parser.add_argument("--no-bf16", action="store_true", help="no bf16 autocast on CUDA")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.model import ModelConfig
    from qmra.training.distributed import DistributedContext
    from qmra.training.specs import DataSpec
    from qmra.training.trainer import TrainConfig, Trainer

    data = [DataSpec.parse(text) for text in args.data]
    val = DataSpec.parse(args.val) if args.val else None
    model_config = ModelConfig(backbone=args.backbone, variant=args.variant, decoder_channels=args.decoder_channels)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, accumulate=args.accumulate, size=args.size, lr=args.lr,
                         lr_schedule=args.lr_schedule, warmup=args.warmup, teacher_forcing=args.teacher_forcing,
                         val_every=args.val_every, save_every=args.save_every, seed=args.seed, workers=args.workers,
                         bf16=not args.no_bf16, val_resolution=args.val_resolution,
                         bn_calibration_videos=args.bn_calibration_videos, time_budget=args.time_budget)
    context = DistributedContext.from_environment(args.device)
    try:
        trainer = Trainer(model_config, config, data, args.out, context, val=val, backbone_weights=args.backbone_weights,
                          init=args.init, resume=args.resume, train_batchnorm=args.train_batchnorm,
                          progress=show_progress(args.quiet))
        summary = trainer.run()
    finally:
        context.close()
    if context.is_main and not args.quiet:
        best = f", best validation J&F {summary['best_jf']:.3f}" if summary["best_jf"] >= 0 else ""
        print(f"trained to step {summary['step']}{best}; checkpoints in {args.out}/ (last.safetensors"
              f"{', best.safetensors' if summary['best_jf'] >= 0 else ''}), metrics.csv, curves.png")
    return 130 if summary["stopped_by"] else 0
