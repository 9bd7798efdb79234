"""Progress through a run: adaptation as its own step, the time left from frames only."""

from __future__ import annotations

import io

from qmra.inference import InferenceSettings
from qmra.inference.progress import LINE_SECONDS, RunProgress
from tests.inference.helpers import clip, tiny_segmenter
from tests.tiny import Clock


def test_the_time_left_counts_frames_only_not_adaptation():
    clock, out = Clock(100.0), io.StringIO()
    shown = RunProgress("lines", 60, stream=out, clock=clock)
    for step in range(1, 61):  # 30 s of adaptation: as long as 30 frames
        clock.now += 0.5
        shown.adapting(step, 60, [1])
    clock.now += 1.0
    shown.frame()
    assert shown.status() == "frame 1 of 60, 1.00 frames/s, about 59 s left"
    lines = out.getvalue().splitlines()
    assert lines[0] == "qmra: adapting to object 1: 1/60 steps" and "qmra: adapting to object 1: 60/60 steps" in lines
    assert lines[-1] == "qmra: frame 1 of 60, 1.00 frames/s, about 59 s left"


def test_lines_come_every_few_seconds_and_at_the_end():
    clock, out = Clock(100.0), io.StringIO()
    shown = RunProgress("lines", 25, stream=out, clock=clock)
    for _ in range(25):
        clock.now += 1.0
        shown.frame()
    frames = [int(line.split()[2]) for line in out.getvalue().splitlines()]
    assert frames[0] == 1 and frames[-1] == 25 and len(frames) == 2 + int(24 // LINE_SECONDS)


def test_a_frame_count_that_falls_short_is_dropped_and_frames_are_counted_up():
    clock, out = Clock(100.0), io.StringIO()
    shown = RunProgress("lines", 2, stream=out, clock=clock)  # estimated from the duration: 2, but there are 4
    for _ in range(4):
        clock.now += 1.0
        shown.frame()
    assert shown.status() == "frame 4, 1.00 frames/s"
    bar = RunProgress("bar", 2, stream=io.StringIO(), clock=clock)
    for _ in range(3):
        bar.frame()
    assert bar._bar.total is None and bar._bar.n == 3
    bar.close()


def test_the_bar_names_the_adaptation_then_counts_frames():
    out = io.StringIO()
    shown = RunProgress("bar", 3, stream=out)
    shown.adapting(1, 2, [1, 2])
    assert "adapting to objects 1, 2: 1/2 steps" in out.getvalue()
    shown.adapting(2, 2, [1, 2])
    for _ in range(3):
        shown.frame()
    shown.close()
    assert shown.done == 3


def test_a_session_with_adaptation_reports_its_steps_and_frames(capsys):
    video = clip(frames=3, objects=1)
    segmenter = tiny_segmenter(InferenceSettings(adapt_steps=2, adapt_average=2))
    session = segmenter.start([video.image(i) for i in range(3)], prompts={1: video.first_boxes()[1]})
    list(session.propagate(progress="lines"))
    lines = capsys.readouterr().err.splitlines()
    assert "qmra: adapting to object 1: 4/4 steps" in lines  # 2 adaptations averaged × 2 steps
    assert lines[-1].startswith("qmra: frame 3 of 3, ")
    assert session.networks.on_step is None  # the run's reporter is not left behind
