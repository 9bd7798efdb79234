"""Workers as processes on this machine: each loads the weights once and takes videos one at a time,
or several at a time in threads (``--videos-per-worker``) whose frames share the query encoder.

Processes are started with ``spawn`` (a forked PyTorch can hang in its thread pools). Each worker
runs the network on its share of the CPU threads (:func:`split_threads`), so that N workers never
ask for more threads than there are cores. Ctrl-C in a terminal reaches every worker; the command
forwards SIGTERM (and a Ctrl-C sent to it alone) to them: each closes its video's files, reports it
as interrupted, and exits.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import signal
import threading
import time
from pathlib import Path

from qmra.batch.job import BatchOutputs, Job, segment_job
from qmra.batch.schedule import Event
from qmra.errors import QmraError
from qmra.interrupt import terminate_interrupts

#: Seconds between a worker's frame reports (the progress bar needs no more).
FRAME_REPORT_EVERY = 0.5
#: Memory one CPU worker may take: 1.17 GB at most was seen for the shipped weights at their settings
#: on 854×480 video, adaptation included; larger frames take more.
WORKER_MEMORY = 1.5e9


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux's MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_workers(cores: int, memory: int | None) -> int:
    """Workers for a CPU run: one per core (on 2 cores, 2 workers of one thread did 1.13x the videos
    of one worker with both: docs/speed.md), fewer where :data:`WORKER_MEMORY` each would not fit."""
    fits = cores if memory is None else int(memory // WORKER_MEMORY)
    return max(1, min(cores, fits))


def split_threads(cores: int, workers: int) -> int:
    """CPU threads per worker so that ``workers`` of them use the ``cores`` without oversubscribing."""
    return max(1, cores // max(1, workers))


def worker_device(device: str, slot: int) -> str:
    """``cuda`` spreads workers over the GPUs in turn (``cuda:0``, ``cuda:1``, ...); others stay as given."""
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{slot % count}" if count > 1 else device


class LocalPool:
    """``size`` worker processes, each with the segmenter ``args`` ask for (``qmra batch``'s parsed
    network and speed flags), writing to ``outputs``. Each process runs ``lanes`` videos at once in
    threads that share its network and batch their query encodings
    (:mod:`qmra.inference.encode_batch`); the scheduler sees ``size`` × ``lanes`` slots, slot ``s``
    being lane ``s % lanes`` of process ``s // lanes``."""

    def __init__(self, args: argparse.Namespace, outputs: BatchOutputs, size: int, lanes: int = 1) -> None:
        self.args, self.outputs, self.processes, self.lanes = args, outputs, size, lanes
        self.size = size * lanes
        self._context = multiprocessing.get_context("spawn")
        self._results = self._context.Queue()
        self._tasks: list = [None] * self.size
        self._processes: list = [None] * size
        self._busy: set[int] = set()

    def start(self) -> None:
        for worker in range(self.processes):
            self._spawn(worker)

    def _spawn(self, worker: int) -> None:
        args = argparse.Namespace(**vars(self.args))
        args.device = worker_device(args.device, worker)
        slots = range(worker * self.lanes, (worker + 1) * self.lanes)
        for slot in slots:
            self._tasks[slot] = self._context.Queue()
        process = self._context.Process(target=_work, args=(args, self.outputs, list(slots),
                                                            [self._tasks[s] for s in slots], self._results),
                                        name=f"qmra-batch-{worker}", daemon=True)
        process.start()
        self._processes[worker] = process

    def submit(self, slot: int, job: Job) -> None:
        self._busy.add(slot)
        self._tasks[slot].put(job)

    def events(self, timeout: float) -> list[Event]:
        found: list[Event] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                found.append(self._results.get(timeout=max(0.0, deadline - time.monotonic()) if not found else 0.0))
            except queue.Empty:
                break
        ended = {e.slot for e in found if e.kind == "ended"}
        for event in found:
            if event.kind == "ended":
                self._busy.discard(event.slot)
        for slot in sorted(self._busy - ended):
            process = self._processes[slot // self.lanes]
            if not process.is_alive() and self._results.empty():
                self._busy.discard(slot)
                found.append(Event("died", slot, reason=f"exit code {process.exitcode}"))
        return found

    def revive(self, slot: int) -> None:
        worker = slot // self.lanes
        if not self._processes[worker].is_alive():  # its other lanes' slots were revived with it
            self._spawn(worker)

    def interrupt(self) -> None:
        for process in self._processes:
            if process is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)  # a worker already stopping ignores it

    def close(self) -> None:
        for slot, tasks in enumerate(self._tasks):
            process = self._processes[slot // self.lanes]
            if process is not None and process.is_alive():
                tasks.put(None)
        for process in self._processes:
            if process is not None:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()


def _next_job(tasks, parent: int, stop: threading.Event | None = None) -> Job | None:
    """The next job, or None when told to stop (a None job, or ``stop`` set) or when the command that
    started this worker is gone (killed with SIGKILL: nobody would read what it writes)."""
    while stop is None or not stop.is_set():
        try:
            return tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return None
    return None


def _work(args: argparse.Namespace, outputs: BatchOutputs, slots: list[int], tasks: list, results) -> None:
    """A worker process: load the segmenter, then segment each job given until told to stop; with
    several ``slots``, one thread per slot, their query encodings batched together."""
    from qmra.commands.common import make_segmenter

    parent = os.getppid()
    with terminate_interrupts():
        try:
            try:
                segmenter = make_segmenter(args, False)
            except Exception as error:  # no video could run here: the command stops, saying why
                results.put(Event("broken", slots[0], reason=str(error) if isinstance(error, QmraError)
                                  else f"{type(error).__name__}: {error}"))
                return
            if len(slots) == 1:  # in this thread, where Ctrl-C and SIGTERM stop the video at once
                _lane(segmenter, outputs, slots[0], tasks[0], results, parent)
                return
            _lanes(segmenter, outputs, slots, tasks, results, parent)
        except KeyboardInterrupt:  # stopped while loading or waiting: nothing was running
            return


def _lanes(segmenter, outputs: BatchOutputs, slots: list[int], tasks: list, results, parent: int) -> None:
    """One thread per slot sharing ``segmenter`` and a :class:`QueryBatcher`; Ctrl-C or SIGTERM (raised
    in this thread) stops every lane's video after its current frame, files closed."""
    from qmra.inference.encode_batch import QueryBatcher
    from qmra.inference.runtime import switches_held

    stop, batcher = threading.Event(), QueryBatcher()
    ended = [threading.Event() for _ in slots]

    def lane(slot: int, tasks_, finished: threading.Event) -> None:
        try:
            _lane(segmenter, outputs, slot, tasks_, results, parent, stop, batcher)
        finally:
            finished.set()

    with switches_held(segmenter.device, segmenter.threads):
        for slot, tasks_, finished in zip(slots, tasks, ended):
            threading.Thread(target=lane, args=(slot, tasks_, finished), name=f"qmra-lane-{slot}", daemon=True).start()
        # Polled with sleep, never Thread.join: here (Python 3.11) a join interrupted by SIGTERM was seen to
        # report a running lane as ended, and the process then exited with that video's overlay unfinished.
        try:
            while not all(e.is_set() for e in ended):
                time.sleep(0.1)
        except KeyboardInterrupt:
            stop.set()
            while not all(e.is_set() for e in ended):
                time.sleep(0.1)


def _lane(segmenter, outputs: BatchOutputs, slot: int, tasks, results, parent: int,
          stop: threading.Event | None = None, batcher=None) -> None:
    """Segment each job ``tasks`` gives until told to stop, reporting on ``results`` as ``slot``;
    ``stop`` (a lane of several): set when the worker is interrupted, ending the video in hand."""
    while True:
        job = _next_job(tasks, parent, stop)
        if job is None:
            return
        last = [0.0]

        def on_frame(frames: int) -> None:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if time.monotonic() - last[0] >= FRAME_REPORT_EVERY:
                last[0] = time.monotonic()
                results.put(Event("frame", slot, frames=frames))

        record = segment_job(segmenter, job, outputs, on_frame, batcher)
        results.put(Event("ended", slot, record=record))
        if record.status == "interrupted":
            return
