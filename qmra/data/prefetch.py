"""Reading ahead on a background thread, so that decoding frames overlaps the network's work."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread produces up to ``depth`` of them ahead.

    An error raised while producing is raised here, at the item where it happened. Closing the
    generator early (break, an exception in the loop) stops the thread; where ``items`` can be told
    to stop waiting for input (an ``interrupt()`` method: a pipe), it is told first.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer(_Failure(error))
            return
        offer(_END)

    worker = threading.Thread(target=produce, name="qmra-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        interrupt = getattr(items, "interrupt", None)
        if callable(interrupt):
            interrupt()  # a thread waiting on a quiet pipe would otherwise hold the join to its timeout
        worker.join(timeout=5)
