"""The sweep folder: ``<runs_dir>/<name>-<timestamp>-<id>/`` holding the resolved sweep file,
the manifest and the run folders (in the format ``train`` writes, so ``compare``, ``show``
and ``train --resume`` work on them unchanged).

The manifest (``manifest.json``) lists every run: its index, cell, seed, resolved config,
folder and status (``pending`` until it ends, then the run's own status) with the reason
of a failure. Only the process driving the sweep writes it, atomically, after each run.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from mlp_lab import runs
from mlp_lab.errors import RunError

SWEEP_FILE = "sweep.yaml"
MANIFEST = runs.SWEEP_MANIFEST
LOCK = ".sweep.lock"
FORMAT = "mlp-lab sweep v1"


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.data["runs"]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def save(self) -> None:
        runs.atomic_write_json(self.path, self.data)

    def update(self, index: int, **fields: Any) -> None:
        self.runs[index].update(fields)
        self.save()


def prepare_run(manifest: Manifest, index: int) -> tuple[Path, bool]:
    """The folder run ``index`` trains into, marked running in the manifest, and whether it
    continues from its checkpoint (an interrupted run) or starts anew (in a new folder with
    its config.yaml: a failed run's old folder is removed)."""
    from mlp_lab.config import config_from_dict, dump_config

    entry = manifest.runs[index]
    old = manifest.folder / entry["folder"] if entry["folder"] else None
    resume = entry["status"] == "interrupted" and old is not None and (old / runs.CHECKPOINT).exists()
    if resume:
        folder = old
    else:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        folder = runs.create_run_dir(manifest.folder, entry["config"]["name"])
        runs.atomic_write_text(folder / runs.CONFIG, dump_config(config_from_dict(entry["config"])))
    manifest.update(index, folder=folder.name, status="running", reason=None)
    return folder, resume


def run_ending(folder: Path) -> tuple[str | None, str | None]:
    """A run folder's own ending, from its summary: (status, the reason of any status but
    completed); (None, None) when it left no finished summary (it died before writing one)."""
    summary = runs.load_run(folder).summary if folder.is_dir() else None
    status = (summary or {}).get("status")
    if status in (None, "running"):
        return None, None
    return status, None if status == "completed" else (summary or {}).get("message")


def create_sweep_folder(runs_dir: Path, sweep: Any) -> Manifest:
    """A new sweep folder with the resolved sweep file and a manifest of pending runs."""
    from mlp_lab.config import config_to_dict

    folder = runs.create_run_dir(runs_dir, sweep.name)
    try:  # all or nothing: a folder without its manifest could be neither run nor resumed
        runs.atomic_write_text(folder / SWEEP_FILE, yaml.safe_dump(sweep.resolved(), sort_keys=False))
        manifest = Manifest(folder / MANIFEST, {
            "format": FORMAT, "name": sweep.name, "source": str(sweep.path),
            "runs": [{"index": r.index, "cell": r.cell, "seed": r.seed, "varies": r.varies, "status": "pending",
                      "folder": None, "reason": None, "config": config_to_dict(r.config)} for r in sweep.runs],
        })
        manifest.save()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return manifest


def load_manifest(folder: Path) -> Manifest:
    """The manifest of a sweep folder; RunError (one line) when the folder is not a sweep."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise RunError(f"{folder}: no such sweep folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{folder} is not a sweep folder ({MANIFEST} is missing); mlp-lab sweep FILE.yaml starts one") from None
    except (OSError, ValueError):
        raise RunError(f"{path} is corrupt; this sweep cannot be resumed") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        raise RunError(f"{path} is not an mlp-lab sweep manifest; this sweep cannot be resumed")
    return Manifest(path, data)


@contextmanager
def held(folder: Path) -> Iterator[None]:
    """Hold the sweep folder for this process: a second process driving the same sweep
    (a concurrent --resume) is refused with a RunError instead of running runs twice."""
    lock_path = Path(folder) / LOCK
    with open(lock_path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            raise RunError(f"{folder} is being run by {owner}; wait for it to end (or stop it) and resume then") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
