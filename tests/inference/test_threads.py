import subprocess
import threading
import sys
import time

import pytest
import torch

from qmra.inference import InferenceSettings
from qmra.inference.threads import ThreadChoice, choose_threads, free_cores, other_runnable
from tests.inference.helpers import clip, tiny_segmenter


@pytest.mark.parametrize("cores,busy,free", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 2.0, 1), (2, 5.0, 1), (16, 3.0, 13)])
def test_free_cores_leaves_the_busy_ones_and_keeps_at_least_one(cores, busy, free):
    assert free_cores(cores, busy) == free


def test_other_programs_spinning_are_seen():
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert other_runnable() >= 1.5  # both spinners count, whatever else comes and goes
    finally:
        for process in spinners:
            process.kill()


def test_a_requested_count_holds_while_the_network_works_and_the_process_keeps_its_own():
    saved = torch.get_num_threads()
    other = 1 if saved > 1 else 2
    choice = ThreadChoice(other, torch.device("cpu"))
    assert choose_threads(other) == other == choice.count
    with choice.applied() as count:
        assert count == other == torch.get_num_threads()
    assert torch.get_num_threads() == saved


def test_a_segmenter_and_its_runs_leave_the_process_thread_count_alone():
    saved = torch.get_num_threads()
    other = 1 if saved > 1 else 2
    segmenter = tiny_segmenter(InferenceSettings(threads=other))
    assert torch.get_num_threads() == saved
    video = clip(frames=2, objects=1)
    session = segmenter.start([video.image(i) for i in range(2)], prompts={1: video.first_boxes()[1]})
    seen = []
    for _ in session.propagate():
        seen.append(torch.get_num_threads())
    assert seen == [saved, saved] and torch.get_num_threads() == saved  # set inside each frame's work only
    assert segmenter.threads.count == other


def test_the_free_core_choice_is_looked_at_again_once_it_is_old(monkeypatch):
    import qmra.inference.threads as threads

    looks = []
    monkeypatch.setattr(threads, "free_cores", lambda *given: looks.append(1) or 1)
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    choice = ThreadChoice(None, torch.device("cpu"))
    assert choice.count == 1 and len(looks) == 1
    clock[0] += threads.CHOICE_SECONDS / 2
    choice.refresh()
    assert len(looks) == 1
    clock[0] += threads.CHOICE_SECONDS
    choice.refresh()
    assert len(looks) == 2



def test_a_niced_background_job_does_not_count_as_busy():
    import os

    if not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    background = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        niced = other_runnable()
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            with_rival = other_runnable()
        finally:
            rival.kill()
    finally:
        for process in background:
            process.kill()
    assert niced < 1.5 and with_rival >= niced + 0.6  # the spinner at our priority counts, the two niced ones do not


def _overlapping_runs(runtime_device: torch.device) -> list[bool]:
    """Two runs in two threads, the first ending while the second still works; the cuDNN switch the
    second sees after the first ended."""
    from qmra.inference.runtime import cudnn_benchmark

    first_in, second_in, first_out, seen = threading.Event(), threading.Event(), threading.Event(), []

    def first() -> None:
        with cudnn_benchmark(runtime_device):
            first_in.set()
            second_in.wait(10)  # both runs are inside before the first ends
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with cudnn_benchmark(runtime_device):
            second_in.set()
            first_out.wait(10)
            seen.append(torch.backends.cudnn.benchmark)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads[::-1]:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return seen


def test_sessions_in_threads_keep_the_switches_set_while_any_runs_and_the_process_gets_its_own_back():
    from qmra.inference.runtime import switches_held

    cuda = torch.device("cuda")  # the switch is a flag: setting it needs no GPU
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert _overlapping_runs(cuda) == [False]  # alone, the first run's end switches it off under the second
        torch.backends.cudnn.benchmark = False  # (and the second's end left it on)
        with switches_held(cuda, ThreadChoice(1, cuda)):
            assert _overlapping_runs(cuda) == [True]  # the first run's end did not switch it off under the second
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark is False  # and the last run's end did not leave it on
        with switches_held(torch.device("cpu"), ThreadChoice(1, torch.device("cpu"))):
            assert torch.backends.cudnn.benchmark is False  # nothing to measure on a CPU
    finally:
        torch.backends.cudnn.benchmark = before
