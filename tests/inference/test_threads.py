import subprocess
import sys
import time

import pytest
import torch

from qmra.inference.threads import choose_threads, free_cores, other_runnable


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


def test_a_requested_count_is_set_for_the_process():
    saved = torch.get_num_threads()
    try:
        assert choose_threads(1, torch.device("cpu")) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)



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
