"""Argument helpers shared by the commands."""

from __future__ import annotations

import sys

from qmra.errors import QmraError


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (width x height, as videos are named: 854x480) → (H, W), both at least 16."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise QmraError(f"size must look like 854x480 (width x height), got {text!r}") from None
    if height < 16 or width < 16:
        raise QmraError(f"size must be at least 16x16, got {text!r}")
    return height, width


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching a terminal."""
    return not quiet and sys.stderr.isatty()
