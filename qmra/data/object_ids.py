"""Object ids: what a label map's pixel values may name."""

from __future__ import annotations

import numpy as np

from qmra.errors import QmraError

#: Label maps are written as 8-bit palette PNGs; 0 is the background.
MAX_OBJECT_ID = 255


def check_object_id(value: object) -> int:
    """``value`` as an object id (an integer 1..255), or a :class:`QmraError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_OBJECT_ID:
        raise QmraError(f"object ids are integers 1..{MAX_OBJECT_ID}, got {value!r}")
    return int(value)
