"""What a backend tells while a sweep runs: a run started (where), finished an epoch, ended.

The console's views (``console.py``) and tests subclass ``Watch``; a backend calls it from
the process driving the sweep, never from a worker.
"""

from __future__ import annotations

from typing import Any


class Watch:
    """Does nothing; override what you want to hear about."""

    def started(self, index: int, where: str) -> None:
        """Run ``index`` began training ``where`` (a pid, or a Ray node and pid). A Ray task
        that is retried after its worker died begins again: this is called again."""

    def epoch(self, index: int, epoch: int) -> None:
        """Run ``index`` has finished ``epoch`` epochs (counting those before a resume)."""

    def ended(self, entry: dict[str, Any], finished: int, total: int) -> None:
        """Run ``entry`` (its manifest entry) ended; ``finished`` of ``total`` runs have."""
