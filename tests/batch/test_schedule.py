"""The scheduler against a pool that follows a script: a dead worker's video is retried, then given
up; an interruption records what was running; the index is written as videos end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qmra.batch.index import DONE, FAILED, INTERRUPTED, ResultIndex, VideoRecord
from qmra.batch.job import Job
from qmra.batch.manifest import BatchItem
from qmra.batch.schedule import BatchTally, Event, run_batch


class ScriptedPool:
    """Two workers; ``deaths`` says how many times the worker dies on each video before finishing it."""

    size = 2

    def __init__(self, deaths: dict[str, int], interrupt_on: str | None = None) -> None:
        self.deaths, self.interrupt_on = dict(deaths), interrupt_on
        self.submitted: list[tuple[int, str, int]] = []
        self.revived: list[int] = []
        self.pending: list[Event] = []
        self.running: dict[int, Job] = {}
        self.interrupted = self.closed = False

    def start(self) -> None:
        pass

    def submit(self, slot: int, job: Job) -> None:
        self.submitted.append((slot, job.item.id, job.attempt))
        self.running[slot] = job
        if job.item.id == self.interrupt_on:
            raise KeyboardInterrupt
        self.pending.append(Event("frame", slot, frames=3))
        if self.deaths.get(job.item.id, 0) > 0:
            self.deaths[job.item.id] -= 1
            self.pending.append(Event("died", slot, reason="killed"))
        else:
            self.pending.append(Event("ended", slot, record=VideoRecord(job.item.id, "v", DONE, frames=5,
                                                                         attempt=job.attempt)))

    def events(self, timeout: float) -> list[Event]:
        found, self.pending = self.pending, []
        if self.interrupted:
            found += [Event("ended", slot, record=VideoRecord(job.item.id, "v", INTERRUPTED, frames=2))
                      for slot, job in self.running.items()]
            self.running.clear()
        return found

    def revive(self, slot: int) -> None:
        self.revived.append(slot)

    def interrupt(self) -> None:
        self.interrupted = True

    def close(self) -> None:
        self.closed = True


class Reporter:
    """Collects what the progress display would show."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.finished: list[str] = []

    def frames(self, video_id: str, frames: int) -> None:
        self.seen.append((video_id, frames))

    def ended(self, record: VideoRecord) -> None:
        self.finished.append(record.id)


def _jobs(*ids: str) -> list[Job]:
    return [Job(BatchItem(i, Path(f"{i}.mp4"), (), f"line {n}")) for n, i in enumerate(ids, start=1)]


def _index_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_video_whose_worker_dies_is_retried_and_the_worker_replaced(tmp_path):
    pool, tally, reporter = ScriptedPool({"b": 1}), BatchTally(), Reporter()
    run_batch(_jobs("a", "b", "c"), pool, ResultIndex(tmp_path / "index.jsonl"), reporter, tally, retries=1)
    assert sorted(reporter.finished) == ["a", "b", "c"] and ("b", 3) in reporter.seen
    assert sorted(r.id for r in tally.done) == ["a", "b", "c"] and not tally.failed
    assert ("b", 2) in [(video, attempt) for _, video, attempt in pool.submitted] and pool.revived == [1]
    assert {r["id"]: r["attempt"] for r in _index_lines(tmp_path / "index.jsonl")} == {"a": 1, "b": 2, "c": 1}
    assert pool.closed


def test_a_video_that_kills_its_worker_more_often_than_retries_fails_alone(tmp_path):
    pool, tally = ScriptedPool({"b": 5}), BatchTally()
    run_batch(_jobs("a", "b", "c"), pool, ResultIndex(tmp_path / "index.jsonl"), Reporter(), tally, retries=2)
    assert [r.id for r in tally.failed] == ["b"] and sorted(r.id for r in tally.done) == ["a", "c"]
    assert tally.failed[0].error == "its worker died (killed) 3 times" and tally.failed[0].status == FAILED


def test_an_interruption_records_the_running_videos_and_reraises(tmp_path):
    pool, tally = ScriptedPool({}, interrupt_on="c"), BatchTally()
    with pytest.raises(KeyboardInterrupt):
        run_batch(_jobs("a", "b", "c", "d"), pool, ResultIndex(tmp_path / "index.jsonl"), Reporter(), tally)
    assert pool.interrupted and pool.closed
    assert [r.id for r in tally.interrupted] == ["c"]
    latest = ResultIndex(tmp_path / "index.jsonl").latest
    assert latest["c"]["status"] == INTERRUPTED and "d" not in latest


def test_the_index_skips_a_torn_line_and_keeps_the_last_record_of_each_video(tmp_path):
    path = tmp_path / "index.jsonl"
    index = ResultIndex(path)
    index.add(VideoRecord("a", "a.mp4", FAILED, error="boom", run="r1"))
    index.add(VideoRecord("a", "a.mp4", DONE, frames=4, warnings=["not in the index"], run="r1"))
    with open(path, "a") as f:
        f.write('{"id": "b", "status": "do')  # a crash while writing
    again = ResultIndex(path)
    assert again.done("a", "r1")["frames"] == 4 and "warnings" not in again.done("a", "r1")
    assert again.done("b", "r1") is None and again.done("a", "r2") is None  # another run's results are not taken



def test_a_worker_that_cannot_start_stops_the_batch_with_its_reason(tmp_path):
    from qmra.batch.schedule import WorkerBroken

    class BrokenPool(ScriptedPool):
        def events(self, timeout: float) -> list[Event]:
            return [Event("broken", 1, reason="no GPU here")] if not self.interrupted else super().events(timeout)

    pool, tally = BrokenPool({}), BatchTally()
    with pytest.raises(WorkerBroken, match="a worker cannot start: no GPU here"):
        run_batch(_jobs("a", "b", "c"), pool, ResultIndex(tmp_path / "index.jsonl"), Reporter(), tally)
    assert pool.interrupted and pool.closed and sorted(r.id for r in tally.done + tally.interrupted) == ["a", "b"]
