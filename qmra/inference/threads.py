"""How many CPU threads the network's operations use.

PyTorch starts one intra-op thread per core. On a machine that other programs keep busy, those
threads wait for cores that are not free, and every operation waits for its slowest thread: a run
measured twenty times slower with two threads than with one beside two busy processes on two cores.
So, unless told, qmra uses the cores that other programs of equal or higher priority leave free,
looked at again when a run starts if the last look is older than :data:`CHOICE_SECONDS`.

The count is set only while qmra's network works (:meth:`ThreadChoice.applied`) and the process's
own count is restored afterwards, so a program that segments a video (a validation inside training,
a server) keeps its thread count.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

#: PyTorch's own choice (one thread per physical core), read before qmra changes it.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(cores: int | None = None, busy: float | None = None) -> int:
    """Cores not taken by other programs: ``cores`` (default: those this process may use) minus
    ``busy``, the other runnable threads (default: :func:`other_runnable`), at least 1."""
    if cores is None:
        cores = usable_cores()
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


#: How long a thread-count choice stands before a new run looks at the machine's load again
#: (looking costs about 0.1 s).
CHOICE_SECONDS = 30.0


def choose_threads(requested: int | None) -> int:
    """The intra-op thread count for a run: ``requested`` if given, else the free cores, never more
    than PyTorch's own default."""
    return explain_threads(requested)[0]


def explain_threads(requested: int | None) -> tuple[int, str]:
    """:func:`choose_threads`' count, and why, in words (what ``--verbose`` prints)."""
    if requested is not None:
        return requested, "as asked (--threads)"
    cores = usable_cores()
    busy = other_runnable()
    count = min(TORCH_DEFAULT_THREADS, free_cores(cores, busy))
    return count, (f"{cores} cores usable, {busy:.1f} threads of other programs at this priority or higher "
                   f"runnable when it looked, PyTorch's own default {TORCH_DEFAULT_THREADS}")


class ThreadChoice:
    """The thread count a segmenter's runs use on ``device``: ``requested``, or on the CPU the free
    cores, chosen again by :meth:`refresh` once the last choice is :data:`CHOICE_SECONDS` old. On a
    GPU without ``requested`` the process's count is left alone."""

    def __init__(self, requested: int | None, device: torch.device) -> None:
        self.requested = requested
        self.device = device
        self._chosen: int | None = None
        self._chosen_at = -float("inf")
        #: Why the count is what it is, in words ("" on a GPU that was not given one).
        self.reason = ""

    @property
    def count(self) -> int:
        """The count :meth:`applied` sets (the process's own where it sets none)."""
        if self.requested is None and self.device.type != "cpu":
            return torch.get_num_threads()
        if self._chosen is None:
            self.refresh()
        assert self._chosen is not None
        return self._chosen

    def refresh(self) -> int:
        """Look at the machine's load again if the last look is old; the count."""
        now = time.monotonic()
        if self._chosen is None or (self.requested is None and now - self._chosen_at >= CHOICE_SECONDS):
            (self._chosen, self.reason), self._chosen_at = explain_threads(self.requested), now
        return self.count

    @contextmanager
    def applied(self) -> Iterator[int]:
        """The chosen count set for the work inside, the process's own restored after it."""
        before = torch.get_num_threads()
        count = self.count
        if count != before:
            torch.set_num_threads(count)
        try:
            yield count
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
