"""What ``qmra batch`` shows while it works: one bar over videos, with frames, frames per second and
the time left (from the videos' worth of work done: :meth:`BatchProgress.videos_done`); in a log, a line per video and one every few seconds. Each
video's warnings and errors are printed when it ends, named by its id."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from qmra.batch.index import DONE, FAILED, VideoRecord
from qmra.inference.progress import LINE_SECONDS, ProgressStyle, duration


#: The largest share of a video counted done while it runs (it may be longer than the mean).
RUNNING_SHARE = 0.9


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
        self.done_videos = 0  # videos that ended done (not failed)
        self._current: dict[str, int] = {}  # video id → frames so far
        self._last_line = clock()
        self._bar = None
        if self.style == "bar":
            from tqdm import tqdm

            # tqdm's own time left is the mean time per ended video times those left: the postfix
            # gives :meth:`time_left`'s instead.
            self._bar = tqdm(total=total, unit="video", dynamic_ncols=True, file=self.stream,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

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
        self.done_videos += record.status == DONE
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
        left = self.time_left()
        return text + (f", about {duration(left)} left" if left is not None else "")

    def time_left(self) -> float | None:
        """Seconds left, from the time per video's worth of work so far (None: no video ended yet, or all did)."""
        if not 0 < self.ended_videos < self.total:
            return None
        worth = self.videos_done()
        return (self.clock() - self.started) / worth * (self.total - worth)

    def videos_done(self) -> float:
        """Videos' worth of work done: those that ended, and each running one's frames so far as a
        share of the mean length of those done (at most :data:`RUNNING_SHARE`: a video's length is
        known only when it ends). So the time left shrinks while the last videos run, rather than
        growing with the time since one last ended."""
        if not self.done_videos:
            return float(self.ended_videos)
        mean = self.finished_frames / self.done_videos
        running = sum(min(frames / max(mean, 1.0), RUNNING_SHARE) for frames in self._current.values())
        return self.ended_videos + running

    def _show(self) -> None:
        now = self.clock()
        if self._bar is not None:
            left = self.time_left()
            self._bar.set_postfix_str(f"{self.frame_count} frames, {self.frames_per_second():.1f} frames/s"
                                      + (f", about {duration(left)} left" if left is not None else ""), refresh=False)
            self._bar.refresh()
        elif self.style == "lines" and now - self._last_line >= LINE_SECONDS:
            self._say(f"qmra: {self.status()}")
            self._last_line = now

    def _say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

