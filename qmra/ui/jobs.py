"""A page's run in the background, and how the page learns of its progress."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from qmra.errors import QmraError


class Busy(QmraError):
    """The page asked for something that must wait until the running job ends (HTTP 409)."""


class Gone(QmraError):
    """A resource that does not exist (HTTP 404)."""


@dataclass
class Job:
    """A run in the background; the page follows it over Server-Sent Events."""

    id: str
    directions: tuple[str, ...]
    total: int = 0
    done: int = 0
    frame: int | None = None
    status: str = "running"  # running, finished, cancelled, failed
    message: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        self.version = 0

    def update(self, **values) -> None:
        with self.changed:
            for name, value in values.items():
                setattr(self, name, value)
            self.version += 1
            self.changed.notify_all()

    def snapshot(self) -> dict:
        return {"id": self.id, "directions": list(self.directions), "total": self.total, "done": self.done,
                "frame": self.frame, "status": self.status, "message": self.message, "seconds": round(self.seconds, 2)}

    def wait(self, seen: int, timeout: float) -> int:
        """Until the job changes after version ``seen`` (or ``timeout``); returns the version now."""
        with self.changed:
            self.changed.wait_for(lambda: self.version != seen, timeout)
            return self.version
