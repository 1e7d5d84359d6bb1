"""Is anyone training this run? A lock each run's process holds on its own folder.

The pid a summary names is kept as information only: a pid can be reused by a stranger
after a crash or a reboot, while the kernel lets go of a flock however its process ends.
No torch here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from mlp_lab.errors import RunError

# A run's process holds this lock file in its folder for as long as it trains: the kernel lets
# go of it however the process ends (SIGKILL, out of memory, a reboot), so a free lock means
# nobody trains the run, whatever pid its summary names (a pid can be reused by a stranger).
RUN_LOCK = ".run.lock"
_held: dict[Path, Any] = {}


def hold_run(run_dir: Path) -> None:
    """Hold ``run_dir`` for this process until ``release_run`` or the process's end; a
    RunError when another process trains it. Holding it twice is holding it once."""
    key = Path(run_dir).resolve()
    if key in _held:
        return
    f = open(key / RUN_LOCK, "a")  # noqa: SIM115 - held open for the run's life
    for _ in range(100):  # a reader's look (run_lock_held) lasts microseconds
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _held[key] = f
            return
        except BlockingIOError:
            time.sleep(0.01)
    f.close()
    raise RunError(f"{run_dir} is being trained by another process; stop it first, then resume")


def release_run(run_dir: Path) -> None:
    """Let go of ``run_dir`` (its run has ended): the lock file goes, a killed run's stays."""
    key = Path(run_dir).resolve()
    f = _held.pop(key, None)
    if f is not None:
        try:
            (key / RUN_LOCK).unlink()  # while still held: no one reads a free lock of an ended run
        except OSError:
            pass
        f.close()  # closing the file lets go of the lock


def run_lock_held(run_dir: Path) -> bool | None:
    """Whether a live process trains ``run_dir``: True or False from its lock, None when the
    folder has no lock file (written before mlp-lab kept one, or not started yet)."""
    return lock_held(Path(run_dir) / RUN_LOCK)


def lock_held(path: Path) -> bool | None:
    """Whether a live process holds the flock on ``path``; None when there is no such file."""
    try:
        f = open(path)  # noqa: SIM115
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def process_gone(summary: dict[str, Any]) -> bool:
    """True when a "running" summary's process (its pid on its host) no longer exists.

    False whenever that cannot be told: no pid recorded, or the run is on another host
    (a shared file system) -- a run is only ever declared dead on evidence.
    """
    pid, host = summary.get("pid"), summary.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if host is not None and host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, run by someone else
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: gone too
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
