"""Workers as Ray actors, on a running cluster (``--ray auto`` or an address) or a Ray instance this
command starts on this machine (``--ray`` alone).

Each actor holds a segmenter and asks Ray for its share of a node: ``threads`` CPUs, or one GPU on a
CUDA device. Actors write to ``--out`` themselves, so it must be a path every node reaches. An actor
that dies (its process killed, its node lost) is restarted by Ray, and the scheduler retries its
video. Ctrl-C or SIGTERM cancels the running videos: each actor closes its video's files and reports
it as interrupted (Ray's cancellation flag, checked after every frame).
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import ExitStack

from qmra.batch.index import VideoRecord
from qmra.batch.job import BatchOutputs, Job, segment_job
from qmra.batch.local_pool import WORKER_MEMORY
from qmra.inference.threads import usable_cores
from qmra.batch.schedule import Event
from qmra.errors import QmraError

#: Seconds between polls of the actors' frame counts.
PROGRESS_EVERY = 1.0
#: Seconds to wait for Ray to restart a dead actor before starting another in its place.
REVIVE_SECONDS = 120.0


class SegmentActor:
    """One worker (wrapped by :func:`ray.remote` when the pool starts): a segmenter and the frame counts
    of the videos it is on, ``lanes`` at once in Ray's threads (their query encodings batched, as a
    local worker's lanes are). One more call may run, so that :meth:`progress` answers mid-video."""

    def __init__(self, args: argparse.Namespace, outputs: BatchOutputs, lanes: int = 1) -> None:
        from qmra.commands.common import make_segmenter
        from qmra.inference.encode_batch import QueryBatcher
        from qmra.inference.runtime import switches_held

        self.segmenter = make_segmenter(args, False)
        self.outputs = outputs
        self.batcher = QueryBatcher() if lanes > 1 else None
        self._switches = ExitStack()  # the actor's process is ours: its lanes' switches stay set for its life
        if lanes > 1:
            self._switches.enter_context(switches_held(self.segmenter.device, self.segmenter.threads))
        self.frames: dict[str, int] = {}

    def segment(self, job: Job) -> VideoRecord:
        import ray

        context = ray.get_runtime_context()
        self.frames[job.item.id] = 0

        def on_frame(frames: int) -> None:
            self.frames[job.item.id] = frames
            if context.is_canceled():
                raise KeyboardInterrupt

        try:
            return segment_job(self.segmenter, job, self.outputs, on_frame, self.batcher)
        finally:
            self.frames.pop(job.item.id, None)

    def progress(self) -> dict[str, int]:
        """Finished frames of each video in hand, by id."""
        return dict(self.frames)


class RayPool:
    """``size`` :class:`SegmentActor` s on the Ray cluster at ``address`` (None: a local instance of
    ``size`` × ``threads`` CPUs), each running ``lanes`` videos at once (slot ``s`` is lane
    ``s % lanes`` of actor ``s // lanes``). Without a ``size``: one actor per GPU of the cluster on a CUDA
    device, else one per ``threads`` of its CPUs as its memory allows (each asks Ray for
    :data:`~qmra.batch.local_pool.WORKER_MEMORY`)."""

    def __init__(self, args: argparse.Namespace, outputs: BatchOutputs, size: int | None, address: str | None,
                 threads: int, lanes: int = 1) -> None:
        self.args, self.outputs, self.address, self.threads, self.lanes = args, outputs, address, threads, lanes
        self.actors = size
        self.size = (size or 0) * lanes  # slots (an actor's lanes); known once started
        self._actors: list = []
        self._running: dict = {}  # task reference → slot
        self._jobs: dict[int, str] = {}  # slot → id of the video it runs
        self._polled = 0.0
        self._started_ray = False
        self._actor_class = self._actor_args = None

    def start(self) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address is None:
                cpus = self.actors * self.threads if self.actors else usable_cores()
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                         _node_ip_address="127.0.0.1")
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            self._started_ray = True
        cuda = self.args.device.startswith("cuda")
        resources = ray.cluster_resources()
        if cuda and not resources.get("GPU"):
            raise QmraError(f"--device {self.args.device}: the Ray cluster has no GPU (ray status lists its resources)")
        sized = self.actors is None  # then each actor reserves its memory, so that as many fit as were counted
        if sized:
            fits = int(resources.get("CPU", 1)) // self.threads
            if "memory" in resources:
                fits = min(fits, int(resources["memory"] // WORKER_MEMORY))
            self.actors = max(1, int(resources["GPU"]) if cuda else fits)
        assert self.actors is not None
        self.size = self.actors * self.lanes
        # Never more than the cluster has, or an actor would wait for ever: more actors than GPUs share them.
        cpus = min(float(self.threads), resources.get("CPU", 1.0) / self.actors)
        gpus = min(1.0, resources["GPU"] / self.actors) if cuda else 0
        args = argparse.Namespace(**vars(self.args))
        args.device = "cuda" if cuda else args.device  # each actor sees only the GPU Ray gave it
        memory = int(WORKER_MEMORY) if sized and not cuda else None
        self._actor_class = ray.remote(SegmentActor).options(num_cpus=cpus, num_gpus=gpus, memory=memory,
                                                             max_restarts=-1, max_concurrency=self.lanes + 1)
        self._actor_args = args
        self._actors = [self._new_actor() for _ in range(self.actors)]

    def _new_actor(self):
        return self._actor_class.remote(self._actor_args, self.outputs, self.lanes)

    def submit(self, slot: int, job: Job) -> None:
        self._running[self._actors[slot // self.lanes].segment.remote(job)] = slot
        self._jobs[slot] = job.item.id

    def events(self, timeout: float) -> list[Event]:
        import ray

        found: list[Event] = []
        if self._running:
            references = list(self._running)
            ready, _ = ray.wait(references, num_returns=1, timeout=timeout)
            if ready:  # every one that has ended by now, not only the first
                ready, _ = ray.wait(references, num_returns=len(references), timeout=0)
            for reference in ready:
                slot = self._running.pop(reference)
                try:
                    found.append(Event("ended", slot, record=ray.get(reference)))
                except ray.exceptions.RayActorError as error:
                    if error.actor_init_failed:  # it could not load its segmenter: neither will its restarts
                        found.append(Event("broken", slot, reason=_first_line(error)))
                    else:  # the actor died
                        found.append(Event("died", slot, reason=type(error).__name__))
                except ray.exceptions.RayError as error:  # its task could not run
                    found.append(Event("died", slot, reason=type(error).__name__))
        else:
            time.sleep(timeout)
        if time.monotonic() - self._polled >= PROGRESS_EVERY:
            self._polled = time.monotonic()
            found += self._progress(ray)
        return found

    def _progress(self, ray) -> list[Event]:
        actors = sorted({slot // self.lanes for slot in self._running.values()})
        asked = [self._actors[actor].progress.remote() for actor in actors]
        ready, _ = ray.wait(asked, num_returns=len(asked), timeout=0.2)
        events = []
        for actor, reference in zip(actors, asked):
            if reference in ready:
                try:
                    frames = ray.get(reference)
                except ray.exceptions.RayError:
                    continue  # a dying actor: its task reports that
                events += [Event("frame", slot, frames=int(frames[self._jobs[slot]]))
                           for slot in self._running.values()
                           if slot // self.lanes == actor and self._jobs.get(slot) in frames]
        return events

    def revive(self, slot: int) -> None:
        """Wait for Ray to restart the slot's actor (it answers a call); after
        :data:`REVIVE_SECONDS` without an answer, a new actor takes its slots."""
        import ray

        actor = slot // self.lanes
        deadline = time.monotonic() + REVIVE_SECONDS
        while time.monotonic() < deadline:
            try:
                ray.get(self._actors[actor].progress.remote(), timeout=10)
                return
            except ray.exceptions.RayActorError:  # still restarting
                time.sleep(0.5)
            except ray.exceptions.GetTimeoutError:
                pass
        ray.kill(self._actors[actor])
        self._actors[actor] = self._new_actor()

    def interrupt(self) -> None:
        import ray

        for reference in self._running:
            ray.cancel(reference)

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._started_ray:
            ray.shutdown()


def _first_line(error: Exception) -> str:
    """The last line of the actor's own error (Ray wraps it in its traceback)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    qmra = [line for line in lines if "QmraError" in line or "WeightsError" in line or "ConfigError" in line]
    return (qmra or lines or [type(error).__name__])[-1].strip()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise QmraError("--ray needs Ray: pip install 'qmra[ray]'") from None
    return ray
