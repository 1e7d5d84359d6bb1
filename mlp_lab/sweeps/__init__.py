"""Many runs from one file: grids, cases and seeds (``spec``), a folder per sweep with its
manifest (``folder``), and the local backend running each run in a process of its own
(``local``, ``worker``). ``mlp-lab sweep`` is a thin layer over the functions here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from mlp_lab.sweeps.folder import Manifest, create_sweep_folder, held, load_manifest
from mlp_lab.sweeps.local import DONE, Outcome, run_local, to_do
from mlp_lab.sweeps.spec import PlannedRun, Sweep, cell_id, load_sweep

__all__ = ["DONE", "default_workers", "Manifest", "Outcome", "PlannedRun", "Sweep", "cell_id", "check_data", "load_manifest",
           "load_sweep", "run_sweep", "start_sweep", "to_do"]


# Measured on this project's 2-core CPU machine (README, "Sweeps"): 4 MNIST runs of 3
# epochs took 24.0 s one at a time with 2 threads and 17.2 s two at a time with 1 thread
# each; with 2 epochs on 20,000 images 17.2 s against 10.7 s. A small MLP's ops gain little
# from a second thread, and parallel runs also overlap each run's start-up (importing
# torch, loading the data cache: about 2 s). So: a run per core, one thread each. At most
# 8 at once by default: each process holds torch (about 0.7-1 GB).
MAX_DEFAULT_JOBS = 8


def default_workers(jobs: int | None, threads: int | None) -> tuple[int, int]:
    """(runs at once, torch threads each): one run per core and the cores shared among them,
    unless given."""
    cores = os.cpu_count() or 1
    jobs = jobs if jobs is not None else max(1, min(cores, MAX_DEFAULT_JOBS))
    return jobs, threads if threads is not None else max(1, cores // jobs)


def check_data(configs: list[Any], data_dir: Path | None) -> None:
    """Load each data set the runs use once, before any run starts: a missing data set is an
    error now, not in every run, and each is decoded once (the runs read the cache)."""
    from mlp_lab.data import load_data, resolve_data_dir

    seen = set()
    for cfg in configs:
        where = resolve_data_dir(data_dir, cfg.data)
        key = (cfg.data.dataset, str(where), cfg.data.synthetic_train_size, cfg.data.synthetic_test_size)
        if key not in seen:
            seen.add(key)
            load_data(cfg.data.model_copy(update={"limit_train": None, "val_split": 0.0}), where, "cpu")


def start_sweep(sweep: Sweep, runs_dir: Path, data_dir: Path | None = None) -> Manifest:
    """Check (and decode once) the data the runs use, then make the sweep's folder under
    ``runs_dir`` with every run pending: a missing data set leaves nothing written."""
    check_data([r.config for r in sweep.runs], data_dir)
    return create_sweep_folder(Path(runs_dir), sweep)


def run_sweep(folder: Path, jobs: int = 1, threads: int | None = None, data_dir: Path | None = None,
              report: Callable[[dict[str, Any], int, int], None] | None = None) -> Outcome:
    """Run what is still to do in a sweep folder, holding it against a second process
    (which is refused: RunError)."""
    with held(folder):
        manifest = load_manifest(folder)  # read under the lock: what an earlier process left
        manifest.data["workers"] = {"jobs": jobs, "threads": threads}
        _settle(manifest)
        return run_local(manifest, jobs=jobs, threads=threads, data_dir=data_dir, report=report)


def _settle(manifest: Manifest) -> None:
    """Runs the manifest still calls running belong to a sweep process that was killed
    outright: take their status from their folders (interrupted ones continue)."""
    from mlp_lab import runs

    for entry in manifest.runs:
        if entry["status"] == "running":
            folder = manifest.folder / entry["folder"] if entry["folder"] else None
            status = runs.load_run(folder).status if folder is not None and folder.is_dir() else "failed"
            entry["status"] = status if status in ("completed", "diverged", "interrupted") else "failed"
    manifest.save()
