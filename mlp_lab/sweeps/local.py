"""The local backend: each run in a process of its own, ``jobs`` at a time.

Why processes: a run that crashes, runs out of memory or is killed outright takes only
itself down; the sweep records it as failed with the reason and goes on. Each is forked
from a server that imported torch once (``worker.py``). How many at once:
``sweeps.default_workers`` (one per core, one thread each, from the README's measurement).

Ctrl-C reaches the runs from the terminal (they share its process group); SIGTERM to the
sweep is passed on to them. Either way every running run ends ``interrupted`` as a train
run does, nothing new starts, and ``mlp-lab sweep --resume FOLDER`` goes on. A driver
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
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Any

from mlp_lab import runs
from mlp_lab.errors import DISK_FULL, DiskFull, RunError
from mlp_lab.sweeps import worker
from mlp_lab.sweeps.folder import DONE, Manifest, mark_summary, prepare_run, run_ending
from mlp_lab.sweeps.watch import Place, Watch

POLL_S = 0.2  # how often the driver looks for finished epochs (a run's end wakes it at once)


@dataclass
class _Running:
    index: int
    proc: Any  # a multiprocessing process
    folder: Path
    log: Path
    started: float
    told: bool = False  # SIGTERM passed on already
    metrics_size: int = -1  # metrics.jsonl's size when its epochs were last counted


@dataclass
class Outcome:
    """How the sweep's runs stand once the backend returns."""

    counts: dict[str, int] = field(default_factory=dict)
    stopped: bool = False  # a signal stopped the sweep before every run ended
    disk_full: str | None = None  # why no more runs were started: the disk filled up


class Plan:
    """What a backend's run loop asks between runs. A grid's runs are all in the manifest
    from the start, so every hook is a no-op; a search (``search_runner.SearchPlan``) asks
    new trials as places free up, hears each epoch, and says which runs to stop early."""

    asks = False  # whether more() may add runs (a backend then caps how many run at once)

    def left(self) -> bool:
        """Runs still to add to the manifest."""
        return False

    def more(self) -> list[int]:
        """Add runs to the manifest (called with a free place and nothing queued); their indices."""
        return []

    def total(self, manifest: Manifest) -> int:
        return len(manifest.runs)

    def epoch(self, index: int, record: dict[str, Any] | None = None) -> bool:
        """Run ``index`` finished an epoch (``record``, or read from its folder); True: stop it."""
        return False

    def ended(self, entry: dict[str, Any], stopped: bool) -> dict[str, Any]:
        """Run ``entry`` ended (``stopped``: asked to by ``epoch``); its final entry."""
        return entry

    def close(self) -> None:
        """The loop is over (all done, or stopped)."""


def to_do(manifest: Manifest) -> list[int]:
    """The runs that have not ended for good: pending, interrupted, failed (never a done one twice)."""
    return [r["index"] for r in manifest.runs if r["status"] not in DONE]


def outcome_of(manifest: Manifest, stopped: bool, disk_full: str | None = None) -> Outcome:
    counts: dict[str, int] = {}
    for entry in manifest.runs:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return Outcome(counts=counts, stopped=stopped or disk_full is not None, disk_full=disk_full)


def disk_full_in(entry: dict[str, Any]) -> str | None:
    """The reason of a run that failed because the disk is full, else None."""
    reason = entry.get("reason") or ""
    return reason if entry.get("status") == "failed" and DISK_FULL in reason else None


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
    from mlp_lab.signals import stop_on_signals

    watch, plan = watch or Watch(), plan or Plan()
    queue = to_do(manifest)
    finished = len(manifest.runs) - len(queue)
    running: list[_Running] = []
    stopping: set[int] = set()  # runs the plan asked to stop (a pruned trial)
    full: str | None = None  # set once the disk is full: no new run starts
    with stop_on_signals() as stop:
        try:
            while queue or running or (plan.left() and stop.signal is None and full is None):
                while (queue or plan.left()) and len(running) < jobs and stop.signal is None and full is None:
                    try:
                        queue = queue or plan.more()
                        running.append(_start(manifest, queue.pop(0), threads, data_dir))
                    except DiskFull as e:
                        full = str(e)
                        break
                    watch.started(running[-1].index, Place(running[-1].proc.pid))
                # Wake the moment a run's process ends (its sentinel), else after POLL_S to
                # look for finished epochs: a run's end costs no poll's lag.
                if running:
                    connection.wait([r.proc.sentinel for r in running], timeout=POLL_S)
                else:
                    time.sleep(POLL_S)
                if stop.signal is not None:
                    _pass_on(running)
                for r in running:
                    if _count_epochs(r, watch) and r.index not in stopping and plan.epoch(r.index):
                        stopping.add(r.index)
                        _stop(r.proc.pid)
                for r in [r for r in running if r.proc.exitcode is not None]:
                    running.remove(r)
                    try:
                        entry = plan.ended(_record(manifest, r), r.index in stopping)
                    except DiskFull as e:  # the manifest itself no longer fits: the run folders keep the truth
                        full, entry = str(e), manifest.runs[r.index]
                    full = full or disk_full_in(entry)
                    finished += 1
                    watch.ended(entry, finished, plan.total(manifest))
                if (stop.signal is not None or full is not None) and not running:
                    break
        except KeyboardInterrupt:  # a second Ctrl-C: the runs have it too; wait for them to write their ends
            for r in running:
                r.proc.join()
                _record(manifest, r)
            stop.signal = signal.SIGINT
    plan.close()
    return outcome_of(manifest, stopped=stop.signal is not None, disk_full=full)


def _stop(pid: int) -> None:
    """SIGTERM: the run ends at its next step, interrupted, with every epoch it finished."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _count_epochs(r: _Running, watch: Watch) -> bool:
    """Tell ``watch`` when the run's metrics.jsonl (a line per finished epoch) has grown;
    whether it has."""
    try:
        size = (r.folder / runs.METRICS).stat().st_size
    except FileNotFoundError:
        return False
    if size == r.metrics_size:
        return False
    r.metrics_size = size
    with open(r.folder / runs.METRICS, "rb") as f:
        watch.epoch(r.index, sum(1 for line in f if line.strip()))
    return True


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
