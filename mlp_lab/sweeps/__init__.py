"""Many runs from one file: grids, cases and seeds (``spec``), a folder per sweep with its
manifest (``folder``), and the local backend running each run in a process of its own
(``local``, ``worker``), the driver (``driver``). This module only hands their names on:
``mlp-lab sweep`` and the notebook API use them from here."""

from __future__ import annotations

from mlp_lab.sweeps.datasets import data_key, decode_data
from mlp_lab.sweeps.driver import BACKENDS, default_workers, resume_settings, run_sweep, start_sweep
from mlp_lab.sweeps.folder import DONE, Manifest, load_manifest
from mlp_lab.sweeps.plan import Outcome, PlannedRun, cell_id, to_do
from mlp_lab.sweeps.spec import Sweep, load_sweep, sweep_from_options
from mlp_lab.sweeps.watch import Place, Watch

__all__ = [
    "BACKENDS",
    "DONE",
    "Place",
    "Watch",
    "data_key",
    "decode_data",
    "default_workers",
    "Manifest",
    "Outcome",
    "PlannedRun",
    "Sweep",
    "cell_id",
    "load_manifest",
    "resume_settings",
    "load_sweep",
    "run_sweep",
    "sweep_from_options",
    "start_sweep",
    "to_do",
]
