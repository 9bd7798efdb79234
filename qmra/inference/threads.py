"""How many CPU threads the network's operations use.

PyTorch starts one intra-op thread per core. On a machine that other programs keep busy, those
threads wait for cores that are not free, and every operation waits for its slowest thread: a run
measured twenty times slower with two threads than with one beside two busy processes on two cores
(issue 15). So, unless told, qmra uses the cores that are free when a segmenter is made and each
time propagation starts.
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


def other_runnable(samples: int = 20, interval: float = 0.005) -> float:
    """Threads of other programs that are running or ready to run now, averaged over ``samples``
    reads of /proc/loadavg (Linux; its fourth field counts all runnable threads) less this process's
    own runnable threads (PyTorch's pool may still be spinning after its last operation).
    Elsewhere the one-minute load average, which lags by a minute."""
    counts = []
    for _ in range(samples):
        try:
            total = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            counts.append(total - _own_runnable())
        except (OSError, ValueError, IndexError):
            break
        time.sleep(interval)
    if counts:
        return max(0.0, sum(counts) / len(counts))
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _own_runnable() -> int:
    """This process's threads that are running or ready to run (Linux /proc/self/task)."""
    running = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        running += stat[stat.rindex(")") + 2] == "R"
    return max(1, running)


def choose_threads(requested: int | None, device: torch.device) -> int:
    """The intra-op thread count for a run: ``requested`` if given, else (on the CPU) the free cores,
    never more than PyTorch's own default; set for the process and returned."""
    threads = requested if requested is not None else min(TORCH_DEFAULT_THREADS, free_cores())
    if device.type == "cpu" or requested is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
