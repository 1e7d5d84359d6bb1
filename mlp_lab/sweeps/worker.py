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
import sys
from pathlib import Path
from typing import Any

PRELOAD = ["torch", "mlp_lab.training"]  # what every run imports: imported once, in the server
_context: Any = None


def process(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool, log: Path) -> Any:
    """A started ``multiprocessing`` process training ``run_dir`` (see ``run``)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    proc = _context.Process(target=run, args=(run_dir, threads, data_dir, resume, log), name=f"mlp-lab run {run_dir.name}")
    proc.start()
    return proc


def run(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool, log: Path) -> None:
    """The run's process: stdout to nowhere, stderr to ``log``; exits with train's exit code."""
    with open(os.devnull, "w") as null, open(log, "w", encoding="utf-8") as err:
        os.dup2(null.fileno(), 1)
        os.dup2(err.fileno(), 2)
    sys.exit(train(run_dir, threads, data_dir, resume))


def train(run_dir: Path, threads: int | None, data_dir: Path | None, resume: bool) -> int:
    from mlp_lab import runs
    from mlp_lab.config import config_from_dict
    from mlp_lab.errors import MlpLabError

    try:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        from mlp_lab.training import train_experiment

        cfg = config_from_dict(runs.load_config_dict(run_dir), source=str(run_dir / runs.CONFIG))
        if resume:
            result = train_experiment(cfg, data_dir, resume=run_dir)
        else:
            result = train_experiment(cfg, data_dir, run_dir=run_dir)
    except MlpLabError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted before training started", file=sys.stderr, flush=True)
        return 130
    return result.exit_code
