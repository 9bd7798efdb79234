"""How many CPU threads the network's operations use.

PyTorch starts one intra-op thread per core. On a machine that other programs keep busy, those
threads wait for cores that are not free, and every operation waits for its slowest thread: a run
measured twenty times slower with two threads than with one beside two busy processes on two cores
(issue 15). So, unless told, qmra uses the cores that other programs of equal or higher priority
leave free when a segmenter is made and each time propagation starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

#: PyTorch's own choice (one thread per physical core), read before qmra changes it.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def free_cores(cores: int | None = None, busy: float | None = None) -> int:
    """Cores not taken by other programs: ``cores`` (default: those this process may use) minus
    ``busy``, the other runnable threads (default: :func:`other_runnable`), at least 1."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if busy is None:
        busy = other_runnable()
    return max(1, min(cores, cores - int(busy + 0.5)))


def other_runnable(samples: int = 5, interval: float = 0.01) -> float:
    """Threads of other programs that are running or ready to run now and that compete with this
    one: not lower in priority (a ``nice``d background job yields its core to us), averaged over
    ``samples`` looks at /proc (Linux). Elsewhere the one-minute load average, which lags a minute."""
    counts = []
    for _ in range(samples):
        count = _competing_threads()
        if count is None:
            break
        counts.append(count)
        time.sleep(interval)
    if counts:
        return sum(counts) / len(counts)
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _competing_threads() -> int | None:
    """Runnable threads of other processes whose nice value is not above ours (None: no /proc)."""
    ours = os.getpid()
    try:
        own_nice = os.nice(0)
        processes = [p for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != ours]
    except OSError:
        return None
    competing = 0
    for process in processes:
        try:
            tasks = list((process / "task").iterdir())
        except OSError:  # it ended meanwhile, or is not ours to read
            continue
        for task in tasks:
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            # fields[0] is the state, fields[16] the nice value (the stat file's fields 3 and 19)
            if fields[0] == "R" and int(fields[16]) <= own_nice:
                competing += 1
    return competing


def choose_threads(requested: int | None, device: torch.device) -> int:
    """The intra-op thread count for a run: ``requested`` if given, else (on the CPU) the free cores,
    never more than PyTorch's own default; set for the process and returned."""
    threads = requested if requested is not None else min(TORCH_DEFAULT_THREADS, free_cores())
    if device.type == "cpu" or requested is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
