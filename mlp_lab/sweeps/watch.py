"""What a backend tells while a sweep runs: a run started (where), finished an epoch, ended.

The console's views (``console.py``) and tests subclass ``Watch``; a backend calls it from
the process driving the sweep, never from a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Place:
    """Where a run trains: a process here (local backend), or a Ray worker on a node."""

    pid: int
    host: str | None = None
    node: str | None = None  # Ray's node id

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}" if self.host else f"pid {self.pid}"


class Watch:
    """Does nothing; override what you want to hear about."""

    def started(self, index: int, place: Place) -> None:
        """Run ``index`` began training at ``place``. A Ray task that is retried after its
        worker or node died begins again: this is called again, with the new place."""

    def epoch(self, index: int, epoch: int) -> None:
        """Run ``index`` has finished ``epoch`` epochs (counting those before a resume)."""

    def ended(self, entry: dict[str, Any], finished: int, total: int) -> None:
        """Run ``entry`` (its manifest entry) ended; ``finished`` of ``total`` runs have."""
