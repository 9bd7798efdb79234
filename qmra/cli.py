"""The ``qmra`` command. Errors caused by the user's input print one line and exit with code 2."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Sequence

from qmra import __version__
from qmra.errors import QmraError

if TYPE_CHECKING:
    import torch

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qmra", description="Box-prompted video object segmentation (QMRA, AAAI 2021).")
    parser.add_argument("--version", action="version", version=f"qmra {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser("demo", help="run the network on a synthetic clip and report what it did")
    demo.add_argument("--backbone", default="resnet18", help="resnet18 (default, fast on CPU), resnet34 or resnet50")
    demo.add_argument("--size", default="240x432", help="HEIGHTxWIDTH of the synthetic frames (default 240x432)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=run_demo)

    synthetic = commands.add_parser("synthetic", help="write a synthetic video with exact masks (DAVIS folder or mp4)")
    synthetic.add_argument("out", help="an .mp4 file (masks go to OUT's folder/<name>-masks/) or a folder for the DAVIS layout")
    synthetic.add_argument("--size", default="240x320", help="HEIGHTxWIDTH (default 240x320)")
    synthetic.add_argument("--frames", type=int, default=60)
    synthetic.add_argument("--objects", type=int, default=2, help="labelled objects (ids 1..N)")
    synthetic.add_argument("--distractors", type=int, default=1, help="unlabelled look-alikes")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--name", default=None, help="sequence name in the DAVIS layout (default synthetic-SEED)")
    synthetic.add_argument("--overwrite", action="store_true", help="replace existing output")
    synthetic.set_defaults(handler=run_synthetic)

    model = commands.add_parser("model", help="print the parameter counts of a network configuration")
    model.add_argument("--backbone", default="resnet50")
    model.add_argument("--variant", default="full")
    model.set_defaults(handler=run_model_summary)
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` → (H, W), both positive."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise QmraError(f"size must look like 480x854 (height x width), got {text!r}") from None
    if height < 16 or width < 16:
        raise QmraError(f"size must be at least 16x16, got {text!r}")
    return height, width


def run_demo(args: argparse.Namespace) -> int:
    """One two-stage prediction on a synthetic frame pair, with random weights (no trained weights ship yet)."""
    import torch

    from qmra.model import QMRA, ModelConfig

    height, width = parse_size(args.size)
    generator = torch.Generator().manual_seed(args.seed)
    model = QMRA(ModelConfig(backbone=args.backbone)).eval()
    print("WARNING: no trained weights ship with qmra yet: this demo runs the network with RANDOM weights,")
    print("         so its masks are meaningless. It checks that the two-stage network runs end to end.")
    images, masks, box_maps = _square_clip(height, width, generator)
    with torch.inference_mode():
        model(images[None, :1], box_maps[None, :1], images[None, 1])  # warm-up
        start = time.perf_counter()
        output = model(images[None, :1], box_maps[None, :1], images[None, 1])
        seconds = time.perf_counter() - start
    predicted = output.probability()[0, 0] > 0.5
    truth = masks[1, 0] > 0.5
    union = (predicted | truth).sum().item()
    iou = (predicted & truth).sum().item() / union if union else 1.0
    params = sum(p.numel() for p in model.parameters())
    print(f"model: QMRA {args.backbone}, variant full, {params / 1e6:.1f} M parameters")
    print(f"frame: {height}x{width}, memory = first frame with its true box, query = next frame")
    print(f"outputs: box map {tuple(output.track_logits.shape)}, mask {tuple(output.mask_logits.shape)}, refined {tuple(output.logits.shape)}")
    print(f"IoU of the refined mask with the true mask: {iou:.3f} (random weights)")
    print(f"time for one query frame on {torch.get_num_threads()} CPU threads: {seconds:.3f} s")
    print("Still to come: a synthetic video with several objects, segmented frame by frame, written to ./qmra-demo/.")
    return 0


def _square_clip(height: int, width: int, generator: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Two frames (2×3×H×W in [0, 1]) of a bright square moving over noise, its masks and box maps (2×1×H×W)."""
    import torch

    images = torch.rand(2, 3, height, width, generator=generator) * 0.5
    masks = torch.zeros(2, 1, height, width)
    side_h, side_w = max(4, height // 4), max(4, width // 4)
    for index, (top, left) in enumerate([(height // 5, width // 5), (height // 5 + height // 20, width // 5 + width // 20)]):
        masks[index, :, top : top + side_h, left : left + side_w] = 1.0
        images[index, :, top : top + side_h, left : left + side_w] = torch.tensor([0.9, 0.4, 0.1]).view(3, 1, 1)
    return images, masks, masks.clone()  # a square's box map is the square itself


def run_synthetic(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from qmra.data import SyntheticConfig, SyntheticVideo

    height, width = parse_size(args.size)
    if args.frames < 1 or args.objects < 1 or args.distractors < 0:
        raise QmraError("--frames and --objects must be at least 1 and --distractors at least 0")
    if args.objects > 254:
        raise QmraError("--objects can be at most 254")
    video = SyntheticVideo(SyntheticConfig(height, width, args.frames, args.objects, args.distractors, args.seed), args.name)
    out = Path(args.out)
    boxes = {str(k): list(v.as_tuple()) for k, v in video.first_boxes().items()}
    if out.suffix.lower() == ".mp4":
        masks = out.parent / f"{out.stem}-masks"
        if not args.overwrite and (out.exists() or masks.exists()):
            raise QmraError(f"{out} or {masks} already exists (use --overwrite to replace)")
        video.write_mp4(out, annotations=masks)
        print(f"wrote {out} ({args.frames} frames, {width}x{height}) and its masks in {masks}/")
    else:
        sequence = out / "JPEGImages" / "480p" / video.name
        if not args.overwrite and sequence.exists():
            raise QmraError(f"{sequence} already exists (use --overwrite to replace)")
        video.write_davis(out)
        print(f"wrote the DAVIS layout for sequence {video.name} under {out}/ ({args.frames} frames, {width}x{height})")
    print("first-frame boxes (x0, y0, x1, y1): " + json.dumps(boxes))
    return 0


def run_model_summary(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except QmraError as error:
        print(f"qmra: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("qmra: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
