"""The one scheduler loop: start runs while there are places, hear what they do, record how
they end; the same for every backend.

A backend is a small adapter (``Backend``): it starts a run, waits for what its runs did
(``Started``, ``Epoch``, ``Ended`` events), stops one run (a pruned trial) or all (a
signal). The loop owns everything else, once: the queue and the plan's new trials, the
places (``jobs``), the pruner's verdicts, a full disk (no run starts after it), Ctrl-C and
SIGTERM (every run ends interrupted, nothing new starts), and what the watch is told.
``local.LocalBackend`` runs each run in a process of its own; ``ray_backend.RayBackend``
as a Ray task. Tests drive the loop with a fake backend in-process.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlp_lab.errors import DiskFull
from mlp_lab.signals import stop_on_signals
from mlp_lab.sweeps.folder import Manifest
from mlp_lab.sweeps.plan import Outcome, Plan, disk_full_in, outcome_of, to_do
from mlp_lab.sweeps.watch import Place, Watch

# How long a backend's wait may block without news: the longest a finished epoch waits to
# be heard (a run's end wakes the loop at once on the local backend).
POLL_S = 0.2


@dataclass(frozen=True)
class Started:
    index: int
    place: Place


@dataclass(frozen=True)
class Epoch:
    index: int
    epochs: int  # finished so far, counting those before a resume
    record: dict[str, Any] | None = None  # its metrics line, when the backend has it at hand


@dataclass(frozen=True)
class Ended:
    index: int
    # Records the run's ending in the manifest and returns its entry; may raise DiskFull.
    record: Callable[[], dict[str, Any]] = field(repr=False)


Event = Started | Epoch | Ended


class Backend(Protocol):
    def start(self, index: int) -> None:
        """Start run ``index`` (its folder prepared, its pid or task noted); DiskFull if no room."""

    def busy(self) -> int:
        """Runs started that have not ended yet."""

    def wait(self, timeout: float) -> list[Event]:
        """What the runs did since the last call, waiting up to ``timeout`` for something."""

    def stop(self, index: int) -> None:
        """End run ``index`` early, interrupted, with every epoch it finished (a pruned trial)."""

    def interrupt(self, signum: int) -> None:
        """The signal ``signum`` reached the sweep: pass it on to every run (called again
        while they end)."""

    def drain(self) -> None:
        """A second Ctrl-C: wait for the runs to write their endings, and record them."""


def drive(
    manifest: Manifest, backend: Backend, jobs: int | None, watch: Watch | None = None, plan: Plan | None = None
) -> Outcome:
    """Run every run of ``manifest`` still to do, and those ``plan`` adds, at most ``jobs`` at
    once (None: as many as the backend takes), telling ``watch`` as they go."""
    watch, plan = watch or Watch(), plan or Plan()
    queue = to_do(manifest)
    finished = len(manifest.runs) - len(queue)
    stopping: set[int] = set()  # runs the plan asked to stop (a pruned trial)
    full: str | None = None  # set once the disk is full: no new run starts
    with stop_on_signals() as stop:
        try:
            while queue or backend.busy() or (plan.left() and stop.signal is None and full is None):
                if (stop.signal is not None or full is not None) and not backend.busy():
                    break  # the runs not yet started stay pending, for --resume
                while (
                    (queue or plan.left())
                    and (jobs is None or backend.busy() < jobs)
                    and stop.signal is None
                    and full is None
                ):
                    try:
                        queue = queue or plan.more()
                        backend.start(queue.pop(0))
                    except DiskFull as e:
                        full = str(e)
                        break
                for event in backend.wait(POLL_S):
                    if isinstance(event, Started):
                        watch.started(event.index, event.place)
                    elif isinstance(event, Epoch):
                        watch.epoch(event.index, event.epochs)
                        if event.index not in stopping and plan.epoch(event.index, event.record):
                            stopping.add(event.index)
                            backend.stop(event.index)
                    else:
                        try:
                            entry = plan.ended(event.record(), event.index in stopping)
                        except DiskFull as e:  # the manifest no longer fits: the run folders keep the truth
                            full, entry = str(e), manifest.runs[event.index]
                        full = full or disk_full_in(entry)
                        finished += 1
                        watch.ended(entry, finished, plan.total(manifest))
                if stop.signal is not None:
                    backend.interrupt(stop.signal)
        except KeyboardInterrupt:  # a second Ctrl-C: the runs have it too; wait for them to write their ends
            backend.drain()
            stop.signal = signal.SIGINT
    plan.close()
    return outcome_of(manifest, stopped=stop.signal is not None, disk_full=full)
