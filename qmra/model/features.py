"""What every encoder returns: features at strides 16, 8 and 4."""

from __future__ import annotations

from typing import NamedTuple

import torch


class BackboneFeatures(NamedTuple):
    """Multi-scale features of one encoder pass.

    ``r4``: B×C4×H/16×W/16 (the keys' and values' input), ``r3``: B×C3×H/8×W/8 and ``r2``:
    B×C2×H/4×W/4 (the decoders' skips).
    """

    r4: torch.Tensor
    r3: torch.Tensor
    r2: torch.Tensor
