"""One sweep run in a process of its own, forked from a server that has imported torch.

Why a fork server: a fresh ``python`` per run spends about 2.5 s importing torch and
mlp-lab before it trains (measured: 3.6 s of a short MNIST run, benchmarks/sweep_speed.py).
multiprocessing's ``forkserver`` imports them once in a server process, and each run is a
fork of it: still a process of its own (a crash, out of memory or SIGKILL takes only that
run down), without the start-up. The server ignores Ctrl-C; its children, the runs, do
not: a terminal's Ctrl-C reaches them as it reaches ``mlp-lab train``.

The sweep's driver writes the run's resolved ``config.yaml`` into an empty run folder and
starts ``run`` below in a new process; it trains into that folder exactly as
``mlp-lab train`` would (or continues it from its checkpoint) and exits with train's exit
code, its stderr in ``log``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# What every run imports, imported once in the server: torch, torch._dynamo (torch.optim's
# Optimizer imports it on first use: 0.9 s of every forked run when it was left out), and
# the modules a run reaches (its diagnostics, progress display, live TensorBoard).
PRELOAD = [
    "torch",
    "torch._dynamo",
    "mlp_lab.training",
    "mlp_lab.launch",
    "mlp_lab.training_diagnostics",
    "mlp_lab.console",
    "mlp_lab.export",
    "mlp_lab.config",
]
DISK_FULL_EXIT = 28  # ENOSPC's number: the run failed because the disk is full
DRIVER_GONE_GRACE_S = 10.0  # a run whose driver died ends interrupted at its next step; killed after this
_context: Any = None


def process(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool, log: Path) -> Any:
    """A started ``multiprocessing`` process training ``run_dir`` (see ``run``)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    proc = _context.Process(
        target=run, args=(run_dir, threads, data_dir, resume, log), name=f"mlp-lab run {run_dir.name}"
    )
    with _main_hidden():
        proc.start()
    return proc


@contextmanager
def _main_hidden() -> Iterator[None]:
    """Start processes without telling them the driver's ``__main__``.

    multiprocessing has each new process import the parent's main script (as
    ``__mp_main__``) so that functions defined there can be found. A run needs nothing
    from it (its target lives here), and a script that calls ``mlp_lab.sweep`` without an
    ``if __name__ == "__main__":`` guard would start the whole sweep again in every run.
    With a bare module as ``__main__`` while a process starts, there is no script to import.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def run(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool, log: Path) -> None:
    """The run's process: stdout to nowhere, stderr to ``log``; exits with train's exit code."""
    _end_with_the_driver()
    with open(os.devnull, "w") as null, open(log, "w", encoding="utf-8") as err:
        os.dup2(null.fileno(), 1)
        os.dup2(err.fileno(), 2)
    sys.exit(train(run_dir, threads, data_dir, resume))


def _end_with_the_driver() -> None:
    """End this run when the sweep's driver ends, however it ends (SIGKILL included).

    The run is a child of the fork server, not of the driver, so nothing would tell it; but
    multiprocessing gives it a sentinel of the process that started it, a pipe whose other
    end only the driver holds: it reads end-of-file the moment the driver is gone. A thread
    waits on it, then sends this process SIGTERM: training ends ``interrupted`` at its next
    step with its checkpoint, as for a sweep stopped with SIGTERM, and a resume continues
    it. If that has not ended the process within DRIVER_GONE_GRACE_S, it is killed."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(DRIVER_GONE_GRACE_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="mlp-lab driver watch", daemon=True).start()


def train(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool) -> int:
    from mlp_lab import run_lock, runs
    from mlp_lab.config import config_from_dict
    from mlp_lab.errors import MlpLabError

    try:
        # Held from the process's first moment (before its data loads): a resume finds the
        # run trained by someone from here on (run_lock.RUN_LOCK); training holds it on.
        run_lock.hold_run(run_dir)
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        from mlp_lab.launch import train_experiment

        cfg = config_from_dict(runs.load_config_dict(run_dir), source=str(run_dir / runs.CONFIG))
        if resume:
            result = train_experiment(cfg, data_dir, resume=run_dir)
        else:
            result = train_experiment(cfg, data_dir, run_dir=run_dir)
        if result.status == "failed":  # the log's last line is the reason the sweep records
            print(result.summary.get("message") or "failed", file=sys.stderr, flush=True)
            if str(result.summary.get("error") or "").startswith("DiskFull"):
                return DISK_FULL_EXIT  # said in the exit code too: a full disk may have swallowed the log
    except MlpLabError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted before training started", file=sys.stderr, flush=True)
        return 130
    return result.exit_code
