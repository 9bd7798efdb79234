"""Stray pieces of a mask removed: a piece of an object's mask much smaller than its largest piece is
most often the mask spreading onto background that looks like the object, apart from it.

On validation (docs/results-history.md) dropping pieces under a tenth of the largest raised every real
sequence; the memory does not see it (memory entries use stage 1's box), so it changes only the
masks a run returns.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Pieces touch through edges and corners (8-connectivity).
_NEIGHBOURS = np.ones((3, 3), bool)


def drop_small_pieces(labels: np.ndarray, share: float) -> np.ndarray:
    """H×W object ids (0 = background) → the same with every connected piece of an object's mask that
    is smaller than ``share`` × its largest piece (in pixels) made background; ``share`` 0 returns
    ``labels`` itself. The largest piece always stays, so no mask becomes empty."""
    if share <= 0:
        return labels
    out = labels
    for object_id, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None:
            continue
        pieces, count = ndimage.label(labels[where] == object_id, structure=_NEIGHBOURS)
        if count < 2:
            continue
        sizes = np.bincount(pieces.ravel())
        small = sizes < share * sizes[1:].max()
        small[0] = False  # not the object's
        if small.any():
            if out is labels:
                out = labels.copy()
            out[where][small[pieces]] = 0
    return out
