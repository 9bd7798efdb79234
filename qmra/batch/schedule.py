"""Hands a batch's videos to a pool of workers, one video per worker at a time, and keeps the index.

A pool (:class:`Pool`: local processes, or Ray actors) runs :func:`~qmra.batch.job.segment_job` in
its workers and reports what happens as :class:`Event` objects. A worker that dies (killed, out of
memory, a lost node) has its video retried on the next free worker, ``retries`` times; the retry
continues from the frames the first attempt finished.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

from qmra.batch.index import DONE, FAILED, INTERRUPTED, ResultIndex, VideoRecord
from qmra.batch.job import Job
from qmra.errors import QmraError


@dataclass(frozen=True)
class Event:
    """What a pool reports: ``frame`` (a worker's video has ``frames`` finished frames), ``ended``
    (its video ended: ``record``), ``died`` (the worker died: ``reason``) or ``broken`` (the worker
    cannot start, ``reason``: no video could run, so the batch stops)."""

    kind: str
    slot: int
    frames: int = 0
    record: VideoRecord | None = None
    reason: str = ""


class WorkerBroken(QmraError):
    """A worker could not load its segmenter (no GPU, a bad setting): the batch cannot go on."""


class Pool(Protocol):
    """Workers that each hold a segmenter and take one :class:`Job` at a time (``size`` of them,
    known once started)."""

    size: int

    def start(self) -> None: ...

    def submit(self, slot: int, job: Job) -> None: ...

    def events(self, timeout: float) -> list[Event]: ...

    def revive(self, slot: int) -> None: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class Reporter(Protocol):
    def frames(self, video_id: str, frames: int) -> None: ...

    def ended(self, record: VideoRecord) -> None: ...


@dataclass
class BatchTally:
    """Videos by outcome in this run (``skipped``: finished by an earlier run)."""

    done: list[VideoRecord] = field(default_factory=list)
    failed: list[VideoRecord] = field(default_factory=list)
    interrupted: list[VideoRecord] = field(default_factory=list)
    skipped: int = 0

    def add(self, record: VideoRecord) -> None:
        {DONE: self.done, FAILED: self.failed, INTERRUPTED: self.interrupted}[record.status].append(record)


def run_batch(jobs: Sequence[Job], pool: Pool, index: ResultIndex, reporter: Reporter, tally: BatchTally,
              retries: int = 1) -> None:
    """Run ``jobs`` on ``pool`` until each is done or failed, recording each end in ``index`` and
    ``tally``. On Ctrl-C or SIGTERM (a KeyboardInterrupt here) the workers are told to stop; the
    videos they were on are recorded as interrupted (their finished frames kept), then it re-raises.
    A worker that cannot start raises :class:`WorkerBroken` once the others have stopped likewise."""
    waiting = deque(jobs)
    running: dict[int, Job] = {}
    pool.start()
    try:
        while waiting or running:
            for slot in range(pool.size):
                if slot not in running and waiting:
                    running[slot] = waiting.popleft()
                    pool.submit(slot, running[slot])
            for event in pool.events(timeout=0.5):
                _handle(event, running, waiting, pool, index, reporter, tally, retries)
    except (KeyboardInterrupt, WorkerBroken):
        _stop(pool, running, index, reporter, tally)
        raise
    finally:
        pool.close()


def _handle(event: Event, running: dict[int, Job], waiting: deque, pool: Pool, index: ResultIndex,
            reporter: Reporter, tally: BatchTally, retries: int) -> None:
    if event.kind == "broken":
        raise WorkerBroken(f"a worker cannot start: {event.reason}")
    job = running.get(event.slot)
    if job is None:
        return
    if event.kind == "frame":
        reporter.frames(job.item.id, event.frames)
        return
    del running[event.slot]
    if event.kind == "ended" and event.record is not None:
        _record(event.record, index, reporter, tally)
        return
    pool.revive(event.slot)  # the worker died: a fresh one takes its place
    if job.attempt <= retries:
        waiting.appendleft(replace(job, attempt=job.attempt + 1))
        return
    _record(VideoRecord(job.item.id, str(job.item.video), FAILED, error=f"its worker died ({event.reason}) "
                        f"{job.attempt} time{'s' if job.attempt != 1 else ''}", attempt=job.attempt),
            index, reporter, tally)


def _record(record: VideoRecord, index: ResultIndex, reporter: Reporter, tally: BatchTally) -> None:
    index.add(record)
    tally.add(record)
    reporter.ended(record)


def _stop(pool: Pool, running: dict[int, Job], index: ResultIndex, reporter: Reporter, tally: BatchTally,
          patience: int = 240) -> None:
    """Tell the workers to stop and wait (at most ``patience`` polls of 0.5 s) for the videos they
    were on to end; those that do not are recorded as interrupted with what their folders hold."""
    pool.interrupt()
    for _ in range(patience):
        if not running:
            return
        for event in pool.events(timeout=0.5):
            job = running.get(event.slot)
            if job is None or event.kind == "frame":
                continue
            del running[event.slot]
            record = event.record if event.kind == "ended" and event.record is not None else VideoRecord(
                job.item.id, str(job.item.video), INTERRUPTED, attempt=job.attempt)
            _record(record, index, reporter, tally)
    for job in running.values():
        _record(VideoRecord(job.item.id, str(job.item.video), INTERRUPTED, attempt=job.attempt), index, reporter, tally)
    running.clear()
