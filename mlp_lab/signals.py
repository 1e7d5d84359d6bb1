"""Ctrl-C and SIGTERM as a flag that training checks between steps.

Stopping at a step boundary, instead of raising inside whatever runs, means a signal can
never land in the middle of writing a file; a run that stops this way ends ``interrupted``
with every finished epoch kept, and ``--resume`` continues it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run stops at the next step boundary."""


class StopFlag:
    """Notes the first SIGINT/SIGTERM; ``check()`` raises ``Interrupted`` once one came.
    A second Ctrl-C stops at once (KeyboardInterrupt), unless the run is finishing."""

    def __init__(self) -> None:
        self.signal: int | None = None
        # Set once training has ended: from then on a signal is only noted, so a
        # second Ctrl-C cannot cut the final summary or model.pt short.
        self.finishing = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT and not self.finishing:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum

    def check(self) -> None:
        if self.signal is not None:
            raise Interrupted(signal.Signals(self.signal).name)


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Inside the block, SIGINT and SIGTERM set the yielded flag; the old handlers come back after."""
    flag = StopFlag()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag)
    except ValueError:  # not the main thread (e.g. called from a worker): no handlers
        pass
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
