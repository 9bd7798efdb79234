"""The pages a server holds: made on request, dropped when closed or idle for too long."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

from qmra.ui.engine import Engine
from qmra.ui.jobs import Busy, Gone
from qmra.ui.page import Page


class PageRegistry:
    """At most ``limit`` pages, each in a folder of its own under ``work_dir``; a page idle for
    ``idle_seconds`` (no request, no run) is dropped by a background thread."""

    def __init__(self, work_dir: Path, engine: Engine, limit: int, idle_seconds: float) -> None:
        self.work_dir = work_dir
        self.engine = engine
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.pages: dict[str, Page] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        threading.Thread(target=self._reap, name="qmra-ui-reaper", daemon=True).start()

    def new(self) -> Page:
        """A new page; at the limit, the longest idle one is dropped first (none idle: :class:`Busy`)."""
        with self._lock:
            if len(self.pages) >= self.limit:
                idle = sorted((p for p in self.pages.values() if not p.running), key=lambda p: -p.idle_for())
                if not idle:
                    raise Busy(f"{len(self.pages)} pages are running jobs; close one first")
                self._drop(idle[0])
            page_id = secrets.token_urlsafe(18)
            page = Page(page_id, self.work_dir / page_id, self.engine)
            self.pages[page_id] = page
        return page

    def get(self, page_id: str) -> Page:
        with self._lock:
            page = self.pages.get(page_id)
        if page is None:
            raise Gone("this page's session has ended (closed, or idle too long): reload the page")
        page.touch()
        return page

    def close(self, page_id: str) -> None:
        with self._lock:
            page = self.pages.get(page_id)
            if page is not None:
                self._drop(page)

    def close_all(self) -> None:
        self._closing.set()
        with self._lock:
            pages = list(self.pages.values())
            self.pages.clear()
        for page in pages:
            page.close()

    def _drop(self, page: Page) -> None:
        """Forget a page (the caller holds the lock) and free it on a thread of its own: closing
        waits for a computation in flight."""
        self.pages.pop(page.id, None)
        threading.Thread(target=page.close, name="qmra-ui-close", daemon=True).start()

    def _reap(self) -> None:
        interval = max(0.05, min(30.0, self.idle_seconds / 4))
        while not self._closing.wait(interval):
            with self._lock:
                for page in [p for p in self.pages.values() if p.idle_for() > self.idle_seconds]:
                    self._drop(page)
