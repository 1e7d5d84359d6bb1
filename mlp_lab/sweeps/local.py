"""The local backend: each run in a process of its own, ``jobs`` at a time.

Why processes: a run that crashes, runs out of memory or is killed outright takes only
itself down; the sweep records it as failed with the reason and goes on. Each is forked
from a server that imported torch once (``worker.py``). How many at once:
``sweeps.default_workers`` (one per core, one thread each, from the README's measurement).

Ctrl-C reaches the runs from the terminal (they share its process group); SIGTERM to the
sweep is passed on to them. Either way every running run ends ``interrupted`` as a train
run does, nothing new starts, and ``mlp-lab resume FOLDER`` goes on. A driver
killed outright (SIGKILL, a crash) cannot pass anything on: each run watches its driver
(``worker.py``) and ends itself, interrupted, within seconds.

A full disk ends the sweep's starting of runs: the first run that fails for it (or a
manifest write that finds no space) stops new runs, the running ones end, and the sweep
says so; ``--resume`` continues once there is space.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing import connection
from pathlib import Path
from typing import Any

from mlp_lab import runs
from mlp_lab.errors import DISK_FULL, DiskFull, RunError
from mlp_lab.sweeps import worker
from mlp_lab.sweeps.folder import Manifest, mark_summary, prepare_run, run_ending
from mlp_lab.sweeps.plan import Outcome, Plan
from mlp_lab.sweeps.scheduler import Backend, Ended, Epoch, Event, Started, drive
from mlp_lab.sweeps.watch import Place, Watch


@dataclass
class _Running:
    index: int
    proc: Any  # a multiprocessing process
    folder: Path
    log: Path
    started: float
    told: bool = False  # SIGTERM passed on already
    metrics_size: int = -1  # metrics.jsonl's size when its epochs were last counted


class LocalBackend:
    """The scheduler's backend for runs in processes of their own, forked from the worker
    server: the loop wakes the moment a run's process ends (its sentinel), else after the
    timeout to count finished epochs in the runs' metrics files."""

    def __init__(self, manifest: Manifest, threads: int | None, data_dir: Path | None) -> None:
        self.manifest, self.threads, self.data_dir = manifest, threads, data_dir
        self.running: list[_Running] = []
        self._new: list[Event] = []  # started since the last wait

    def start(self, index: int) -> None:
        r = _start(self.manifest, index, self.threads, self.data_dir)
        self.running.append(r)
        self._new.append(Started(index, Place(r.proc.pid)))

    def busy(self) -> int:
        return len(self.running)

    def wait(self, timeout: float) -> list[Event]:
        if self._new:  # runs just started: told at once, while their processes are surely alive
            started, self._new = self._new, []
            return started
        if self.running:
            connection.wait([r.proc.sentinel for r in self.running], timeout=timeout)
        else:
            time.sleep(timeout)
        events: list[Event] = []
        for r in self.running:
            epochs = _count_epochs(r)
            if epochs is not None:
                events.append(Epoch(r.index, epochs))
        for r in [r for r in self.running if r.proc.exitcode is not None]:
            self.running.remove(r)
            events.append(Ended(r.index, partial(_record, self.manifest, r)))
        return events

    def stop(self, index: int) -> None:
        for r in self.running:
            if r.index == index:
                _stop(r.proc.pid)

    def interrupt(self, signum: int) -> None:
        _pass_on(self.running)  # (a terminal's Ctrl-C reached them already: SIGTERM for the rest)

    def drain(self) -> None:
        for r in self.running:
            r.proc.join()
            _record(self.manifest, r)
        self.running = []


def run_local(
    manifest: Manifest,
    jobs: int = 1,
    threads: int | None = None,
    data_dir: Path | None = None,
    watch: Watch | None = None,
    plan: Plan | None = None,
) -> Outcome:
    """Run every run of ``manifest`` that is still to do (and those ``plan`` adds), ``jobs``
    at a time, telling ``watch`` as runs start, finish epochs and end."""
    backend: Backend = LocalBackend(manifest, threads, data_dir)  # (mypy checks it keeps the protocol)
    return drive(manifest, backend, jobs, watch, plan)


def _stop(pid: int) -> None:
    """SIGTERM: the run ends at its next step, interrupted, with every epoch it finished."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _count_epochs(r: _Running) -> int | None:
    """The run's finished epochs when its metrics.jsonl (a line per finished epoch) has grown
    since the last look; None when it has not."""
    try:
        size = (r.folder / runs.METRICS).stat().st_size
    except FileNotFoundError:
        return None
    if size == r.metrics_size:
        return None
    r.metrics_size = size
    with open(r.folder / runs.METRICS, "rb") as f:
        return sum(1 for line in f if line.strip())


def _start(manifest: Manifest, index: int, threads: int | None, data_dir: Path | None) -> _Running:
    folder, resume = prepare_run(manifest, index)
    logs = manifest.folder / ".logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{index}.log"
    proc = worker.process(folder, threads, data_dir, resume, log)
    try:  # its pid, before it writes a summary: a resume after this driver died waits for it
        manifest.update(index, pid=proc.pid, host=socket.gethostname())
    except DiskFull:
        pass  # the run's own summary names its pid; the next manifest write finds the disk full
    return _Running(index, proc, folder, log, time.time())


def _pass_on(running: list[_Running]) -> None:
    """SIGTERM to the runs (a terminal's Ctrl-C has reached them already; a second SIGINT
    would stop them mid-step, a SIGTERM after it is only noted)."""
    for r in running:
        if r.proc.exitcode is None and not r.told:
            try:
                os.kill(r.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            r.told = True


def _record(manifest: Manifest, r: _Running) -> dict[str, Any]:
    """The run's own ending, from its summary; failed, with the reason, when it left none
    (or a garbled one): from its log, else how its process ended. Never raises for the run."""
    status, reason = run_ending(r.folder)
    if status is None:
        status, reason = "failed", _failure_reason(r)
        if r.folder.is_dir():  # its folder says so too: the folder is what compare and resume read
            try:
                mark_summary(r.folder, manifest.runs[r.index], status="failed", message=reason)
            except RunError:
                pass
    entry = {
        "status": status,
        "reason": reason,
        "seconds": round(time.time() - r.started, 2),
        "folder": r.folder.name if r.folder.is_dir() else None,
        "pid": None,
        "host": None,
    }
    manifest.update(r.index, **entry)
    try:
        if status == "completed" and r.log.stat().st_size == 0:
            os.unlink(r.log)
    except OSError:
        pass
    return manifest.runs[r.index]


def _failure_reason(r: _Running) -> str:
    code = r.proc.exitcode
    if code is not None and code < 0:
        return f"process killed by {signal.Signals(-code).name}"
    if code == worker.DISK_FULL_EXIT:
        return f"{DISK_FULL} writing {r.folder} (its summary could not say so)"
    try:
        lines = [line for line in r.log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    if lines:
        return lines[-1][:500]
    problems = runs.load_run(r.folder).problems if r.folder.is_dir() else ["its run folder is gone"]
    return f"process exited with code {code} and left no log" + (f" ({'; '.join(problems)})" if problems else "")
