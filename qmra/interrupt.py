"""SIGTERM handled as Ctrl-C: batch systems (Slurm, Kubernetes, Ray's autoscaler) stop jobs with it.

Inside :func:`terminate_interrupts`, SIGTERM raises :class:`Terminated`, a :class:`KeyboardInterrupt`,
so that whatever keeps finished work on Ctrl-C (closing the overlay and RLE files) does so on SIGTERM
too; the command then exits with :data:`EXIT_TERMINATED`. The previous handler comes back on leaving.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: Exit codes: Ctrl-C (SIGINT) and SIGTERM, as shells report a process ended by either (128 + signal).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def exit_code(interruption: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED


def _ignore(signum: int, frame) -> None:
    """A second Ctrl-C or SIGTERM while the first is being handled."""


@contextmanager
def terminate_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while inside (elsewhere: nothing changes).
    A second SIGTERM or Ctrl-C while the first is being handled (files closing) is ignored, so that it
    cannot break the clean-up. Ctrl-C keeps Python's handling where a shell made it ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame) -> None:
        # A handler that does nothing, not SIG_IGN: Python raises OSError for a signal caught in between.
        signal.signal(signal.SIGTERM, _ignore)
        signal.signal(signal.SIGINT, _ignore)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, stop)
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
