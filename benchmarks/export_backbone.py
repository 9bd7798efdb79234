"""Write an installed ImageNet backbone as fp16 safetensors without its classifier, for a machine
that cannot install it (a remote GPU with a small upload limit): Lite2's 24 MB become about 8 MB.

    python -m benchmarks.export_backbone efficientnet-lite2 --out .imagenet/efficientnet-lite2.safetensors

``qmra train --backbone-weights .imagenet/efficientnet-lite2.safetensors`` then loads it as it
loads the installed file (the classifier's keys are ignored either way).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from qmra.model.backbones import make_trunk
from qmra.model.pretrained import imagenet_weights_file
from qmra.model.weights import read_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    state = read_state_dict(imagenet_weights_file(args.backbone))
    keep = set(make_trunk(args.backbone).state_dict())
    trunk = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items() if k in keep}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(trunk, str(args.out))
    print(f"{args.out}: {len(trunk)} tensors, {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
