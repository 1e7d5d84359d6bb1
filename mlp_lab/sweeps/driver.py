"""Driving a sweep: its workers' defaults, starting its folder (data checked and decoded,
networks checked to fit), resuming it as it ran, and running what is left on a backend
while holding the folder. ``mlp-lab sweep`` (console.py) and the notebook API call these."""

from __future__ import annotations

import os
from pathlib import Path

from mlp_lab.errors import ConfigError, DiskFull, lookup
from mlp_lab.sweeps.datasets import decode_data
from mlp_lab.sweeps.folder import DONE, Manifest, create_sweep_folder, held, load_manifest, settle
from mlp_lab.sweeps.local import run_local
from mlp_lab.sweeps.plan import Outcome
from mlp_lab.sweeps.spec import Sweep
from mlp_lab.sweeps.watch import Watch

# Measured on this project's 2-core CPU machine (benchmarks/sweep_speed.py, README
# "Sweeps"): 8 MNIST runs of 2 epochs on 20,000 images took 16.1 s one at a time with 2
# threads and 10.4 s two at a time with 1 thread each (17.2 s one at a time with 1). A small
# MLP's ops gain little from a second thread, so two runs at once do more. So: a run per
# core, one thread each. At most 8 at once by default: each process holds torch (about
# 0.7-1 GB).
MAX_DEFAULT_JOBS = 8

BACKENDS = {"local": "a process per run (local.py)", "ray": "a Ray task per run (ray_backend.py)"}


def default_workers(jobs: int | None, threads: int | None, backend: str = "local") -> tuple[int | None, int]:
    """(runs at once, torch threads each): one run per core and the cores shared among them,
    unless given. With Ray, one thread per run and no cap (None) unless given: the cluster's
    CPUs decide how many run at once. A count below 1 or an unknown backend is a
    ConfigError, so every caller (the CLI's commands, the notebook API) refuses them alike."""
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be 1 or more")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads}: must be 1 or more (or leave it out: the cores shared among the jobs)")
    lookup(BACKENDS, "--backend", backend)
    if backend == "ray":
        return jobs, threads if threads is not None else 1
    cores = os.cpu_count() or 1
    jobs = jobs if jobs is not None else max(1, min(cores, MAX_DEFAULT_JOBS))
    return jobs, threads if threads is not None else max(1, cores // jobs)


def start_sweep(sweep: Sweep, runs_dir: Path, data_dir: Path | None = None) -> Manifest:
    """Check (and decode once) the data the runs use, then make the sweep's folder under
    ``runs_dir`` with every run pending: a missing data set, or a network too big for
    this machine, leaves nothing written."""
    from mlp_lab.memory import check_fits

    cells = {f"cell {r.cell}": r.config for r in sweep.runs}
    if sweep.search_base is not None:  # a TPE search has no runs yet: its base config stands for them
        from mlp_lab.config import validate_config

        cells["the search's base config"] = validate_config(sweep.search_base)
    for where, cfg in cells.items():
        check_fits(cfg, source=f"{sweep.path}: {where}")
    decode_data(list(cells.values()), data_dir)
    return create_sweep_folder(Path(runs_dir), sweep)


def _remembered_data_dir(data_dir: Path | None) -> str | None:
    """What a resume must read the data from: --data-dir, else $MLP_LAB_DATA, as absolute paths."""
    given = data_dir or os.environ.get("MLP_LAB_DATA") or None
    return str(Path(given).expanduser().absolute()) if given else None


def resume_settings(
    manifest: Manifest, jobs: int | None, threads: int | None, backend: str | None, data_dir: Path | None
) -> tuple[str, int | None, int, Path | None]:
    """(backend, jobs, threads, data dir) to continue a sweep with: as it ran before, unless
    told otherwise (a run continued with another thread count would not end with the metrics
    of one never stopped). The data the remaining runs need is checked (and decoded) here,
    before any run starts, as for a fresh sweep."""
    from mlp_lab.config import config_from_dict

    before = manifest.data.get("workers") or {}
    backend = backend or before.get("backend") or "local"
    jobs, threads = default_workers(
        jobs if jobs is not None else before.get("jobs"),
        threads if threads is not None else before.get("threads"),
        backend,
    )
    if data_dir is None and before.get("data_dir"):
        data_dir = Path(before["data_dir"])
    decode_data([config_from_dict(e["config"]) for e in manifest.runs if e["status"] not in DONE], data_dir)
    return backend, jobs, threads, data_dir


def _compact(manifest: Manifest) -> None:
    """The sweep has ended (or stopped): its manifest whole again, the journal dropped. On a
    full disk the journal stays, and stays the truth (load_manifest replays it)."""
    try:
        manifest.save()
    except DiskFull:
        pass


def run_sweep(
    folder: Path,
    jobs: int | None = 1,
    threads: int | None = None,
    data_dir: Path | None = None,
    watch: Watch | None = None,
    backend: str = "local",
    address: str | None = None,
) -> Outcome:
    """Run what is still to do in a sweep folder with ``backend`` ("local": a process per run,
    ``jobs`` at a time; "ray": a Ray task per run, on the cluster at ``address`` or a local
    Ray), holding the folder against a second process (which is refused: RunError)."""
    lookup(BACKENDS, "--backend", backend)
    with held(folder):
        manifest = load_manifest(folder)  # read under the lock: what an earlier process left
        manifest.data["workers"] = {
            "backend": backend,
            "jobs": jobs,
            "threads": threads,
            "data_dir": _remembered_data_dir(data_dir),
        }
        settle(manifest)  # the run folders are the truth: nothing done is redone, nothing live is touched
        plan, base = None, None
        if "search" in manifest.data:
            from mlp_lab.config import validate_config
            from mlp_lab.sweeps.search_runner import SearchPlan

            plan, base = SearchPlan(manifest), validate_config(manifest.data["search"]["base"])
        try:
            if backend == "ray":
                from mlp_lab.sweeps.ray_backend import run_ray

                return run_ray(
                    manifest,
                    jobs=jobs,
                    threads=threads or 1,
                    data_dir=data_dir,
                    address=address,
                    watch=watch,
                    plan=plan,
                    base=base,
                )
            return run_local(manifest, jobs=jobs or 1, threads=threads, data_dir=data_dir, watch=watch, plan=plan)
        finally:
            _compact(manifest)
