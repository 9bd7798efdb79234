"""What ``qmra ui`` serves, where, and within which limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class UiConfig:
    """``root``: the folder the page may read and write in (the start folder); ``source``: a video or
    frame folder each new page opens (allowed even outside ``root``); ``out``: an export folder
    allowed even outside ``root``; ``adapt_previews``: a box's preview adapts the network as runs do
    (see :class:`~qmra.ui.engine.Engine`)."""

    root: Path
    source: Path | None = None
    out: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 2048.0
    idle_seconds: float = 15 * 60.0
    max_sessions: int = 8
    adapt_previews: bool = False

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))
