"""The DAVIS palette (the PASCAL VOC colour map): id 0 black, 1 dark red, 2 dark green, ..."""

from __future__ import annotations

import numpy as np


def davis_palette() -> np.ndarray:
    """256×3 uint8: the bits of each id spread over the high bits of R, G and B, as DAVIS and VOC do."""
    ids = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    value = ids.copy()
    for shift in range(7, -1, -1):
        for channel in range(3):
            palette[:, channel] |= ((value >> channel) & 1) << shift
        value >>= 3
    return palette.astype(np.uint8)


DAVIS_PALETTE = davis_palette()
