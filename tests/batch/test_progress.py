"""``qmra batch``'s progress: the time left counts the running videos' frames so far."""

import io

from qmra.batch.index import DONE, FAILED, VideoRecord
from qmra.batch.progress import BatchProgress
from tests.tiny import Clock


def test_the_time_left_shrinks_while_the_last_video_runs():
    clock = Clock()
    progress = BatchProgress("lines", total=3, stream=io.StringIO(), clock=clock)
    assert "left" not in progress.status()  # nothing ended: no estimate yet
    clock.now = 40.0
    progress.ended(VideoRecord("a", "a.mp4", DONE, frames=24, seconds=40))
    progress.ended(VideoRecord("b", "b.mp4", DONE, frames=24, seconds=40))
    assert progress.status() == "2 of 3 videos, 48 frames, 1.2 frames/s, about 20 s left"
    clock.now = 50.0
    progress.frames("c", 18)  # three quarters of the others' length
    assert progress.videos_done() == 2.75
    assert progress.status().endswith("about 5 s left")  # 50 s for 2.75 videos, a quarter to go
    clock.now = 60.0
    progress.frames("c", 40)  # longer than the others: counted 0.9 done, never all
    assert progress.videos_done() == 2.9


def test_failed_videos_count_as_ended_but_not_for_the_mean_length():
    clock = Clock()
    progress = BatchProgress("lines", total=4, stream=io.StringIO(), clock=clock)
    clock.now = 10.0
    progress.ended(VideoRecord("x", "x.mp4", FAILED, error="cannot read x.mp4"))
    progress.frames("y", 30)
    assert progress.videos_done() == 1.0  # no video done yet: no length to measure the running one by
    progress.ended(VideoRecord("z", "z.mp4", DONE, frames=60, seconds=10))
    assert progress.videos_done() == 2.5


def test_the_bar_says_the_same_time_left():
    clock, stream = Clock(), io.StringIO()
    progress = BatchProgress("bar", total=2, stream=stream, clock=clock)
    clock.now = 30.0
    progress.ended(VideoRecord("a", "a.mp4", DONE, frames=30, seconds=30))
    progress.frames("b", 15)
    progress.close()
    assert "45 frames, 1.5 frames/s, about 10 s left" in stream.getvalue()  # 30 s for 1.5 videos
