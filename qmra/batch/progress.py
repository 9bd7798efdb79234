"""What ``qmra batch`` shows while it works: one bar over videos, with frames, frames per second and
the time left (from videos finished); in a log, a line per video and one every few seconds. Each
video's warnings and errors are printed when it ends, named by its id."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from qmra.batch.index import DONE, FAILED, VideoRecord
from qmra.inference.progress import LINE_SECONDS, ProgressStyle, duration


class BatchProgress:
    """Progress over ``total`` videos in ``style`` (False, "bar" or "lines") on ``stream``."""

    def __init__(self, style: ProgressStyle, total: int, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.style = "bar" if style is True else style
        self.total = total
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.ended_videos = 0
        self.finished_frames = 0  # frames of videos that ended
        self._current: dict[str, int] = {}  # video id → frames so far
        self._last_line = clock()
        self._bar = None
        if self.style == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="video", dynamic_ncols=True, file=self.stream)

    @property
    def frame_count(self) -> int:
        """Frames finished: of videos done, and so far of those running."""
        return self.finished_frames + sum(self._current.values())

    def frames_per_second(self) -> float:
        return self.frame_count / max(self.clock() - self.started, 1e-9)

    def frames(self, video_id: str, frames: int) -> None:
        """Video ``video_id`` has ``frames`` frames finished."""
        self._current[video_id] = frames
        self._show()

    def ended(self, record: VideoRecord) -> None:
        """Video ``record.id`` ended: its warnings and error are said, the counts move on."""
        self._current.pop(record.id, None)
        self.ended_videos += 1
        self.finished_frames += record.frames if record.status == DONE else 0
        for line in record.warnings:
            self._say(f"qmra: warning: {record.id}: {line}")
        if record.status == FAILED:
            self._say(f"qmra: error: {record.id}: {record.error}")
        elif self.style == "lines":
            self._say(f"qmra: {record.id}: {record.status}, {record.frames} frames in {record.seconds:.1f} s")
        if self._bar is not None:
            self._bar.update(1)
        self._show()

    def close(self) -> None:
        """Take the bar off the terminal (again: nothing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def status(self) -> str:
        """'3 of 20 videos, 1234 frames, 12.3 frames/s, about 4 min left'."""
        text = f"{self.ended_videos} of {self.total} videos, {self.frame_count} frames, {self.frames_per_second():.1f} frames/s"
        elapsed = self.clock() - self.started
        if 0 < self.ended_videos < self.total:
            text += f", about {duration(elapsed / self.ended_videos * (self.total - self.ended_videos))} left"
        return text

    def _show(self) -> None:
        now = self.clock()
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.frame_count} frames, {self.frames_per_second():.1f} frames/s", refresh=False)
            self._bar.refresh()
        elif self.style == "lines" and now - self._last_line >= LINE_SECONDS:
            self._say(f"qmra: {self.status()}")
            self._last_line = now

    def _say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

