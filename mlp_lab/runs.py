"""The run folder: how a run is written, and how it is read back.

A run folder is ``<runs_dir>/<name>-<YYYYmmdd-HHMMSS>-<6 hex>/`` holding::

    config.yaml        the fully resolved config (what --resume reads)
    metrics.jsonl      one JSON object per finished epoch, appended and flushed
    summary.json       status, final metrics, the epoch chosen on validation, environment,
                       and the resolved config again as JSON (what compare reads);
                       rewritten atomically
    model.pt           final weights (state_dict)
    best.pt            the weights of the epoch chosen on validation (with a validation split)
    checkpoint.pt      last finished epoch, for --resume
    diagnostics.jsonl  per-layer statistics, when diagnostics are on

Writers replace files atomically (``atomic_files``) so that a reader, ``compare`` say,
never sees half a file; a run's process holds a lock on its folder (``run_lock``). Readers
never raise on a broken folder: they report what they could not read and return the rest.
No torch here: ``compare`` uses it.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlp_lab.atomic_files import read_jsonl, write_error
from mlp_lab.errors import RunError, close_names
from mlp_lab.run_lock import process_gone, run_lock_held

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MODEL = "model.pt"
BEST_MODEL = "best.pt"
CHECKPOINT = "checkpoint.pt"
DIAGNOSTICS = "diagnostics.jsonl"

STATUSES = ("running", "completed", "failed", "diverged", "interrupted", "pruned")


# --- writing --------------------------------------------------------------------------


def create_run_dir(runs_dir: Path, name: str) -> Path:
    """Make a fresh, uniquely named run folder.

    ``os.mkdir`` fails if the folder exists, so runs started in the same second by
    several processes can never share a folder: the loser just draws another id.
    """
    runs_dir = Path(runs_dir)
    if runs_dir.is_file():  # (mkdir would say only "File exists")
        raise RunError(f"runs directory {runs_dir} is a file; pass --runs-dir with a folder")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise write_error(e, runs_dir) from None
        raise RunError(f"cannot create runs directory {runs_dir}: {e.strerror or e}") from None
    if not os.access(runs_dir, os.W_OK | os.X_OK):
        raise RunError(f"runs directory {runs_dir} is not writable; pass --runs-dir with a folder you can write to")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = runs_dir / f"{name}-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise write_error(e, path) from None
            raise RunError(f"cannot create run folder in {runs_dir}: {e.strerror or e}") from None
    raise RunError(f"could not find a free run folder name in {runs_dir}")


def remove_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporaries that atomic writes of a killed process left in ``run_dir``.

    A process killed hard (SIGKILL, power loss) between creating ``.summary.json.XXXX.tmp``
    and renaming it cannot clean up; the next process to own the folder (--resume) does.
    Only our own names are touched. Returns what was removed.
    """
    removed = []
    names = (CONFIG, METRICS, SUMMARY, MODEL, CHECKPOINT, DIAGNOSTICS)
    for p in Path(run_dir).iterdir():
        if p.name.endswith(".tmp") and any(p.name.startswith(f".{n}.") for n in names) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


# --- reading --------------------------------------------------------------------------


@dataclass
class RunRecord:
    """What could be read of one run folder."""

    path: Path
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # summary.json says "running" but its process is gone (killed hard: SIGKILL, power
    # loss, out of memory): the run will never finish, so it reads as failed.
    process_gone: bool = False

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        status = (self.summary or {}).get("status")
        if status == "running" and self.process_gone:
            return "failed"
        if status in STATUSES:
            return status
        return "unknown"


def is_run_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in (SUMMARY, CONFIG, METRICS))


# A sweep folder (mlp-lab sweep) holds its runs one level down, beside this file.
SWEEP_MANIFEST = "manifest.json"


def near_folder(path: Path) -> str:
    """' (did you mean runs/relu_adam-...?)' for a missing path with a sibling of a close name
    (run and sweep folders' ids are long and typed by hand), else ''."""
    path = Path(path)
    try:
        names = [p.name for p in path.parent.iterdir() if p.is_dir() and p.name != path.name]
    except OSError:
        return ""
    near = close_names(path.name, names, 1, cutoff=0.8)
    return f" (did you mean {path.parent / near[0]}?)" if near else ""


def folder_kind(path: Path) -> str:
    """What ``mlp-lab resume`` continues: "sweep" or "run"; RunError (one line) for anything else."""
    path = Path(path)
    if path.is_file():
        instead = ""
        if is_run_dir(path.parent) or (path.parent / SWEEP_MANIFEST).is_file():  # its checkpoint.pt, say
            instead = f" (the folder it is in: mlp-lab resume {path.parent})"
        elif path.suffix in (".yaml", ".yml"):
            instead = f" (to train a config: mlp-lab train --config {path})"
        raise RunError(f"{path} is a file; mlp-lab resume continues a run folder or a sweep folder{instead}")
    if not path.is_dir():
        raise RunError(
            f"{path}: no such folder{near_folder(path)}; mlp-lab resume continues a run folder or a sweep folder"
        )
    if (path / SWEEP_MANIFEST).is_file():
        return "sweep"
    if is_run_dir(path):
        return "run"
    raise RunError(
        f"{path} is neither a run folder (no {CONFIG} or {SUMMARY}) nor a sweep folder (no {SWEEP_MANIFEST}); "
        "nothing to resume"
    )


def search_metric(folder: Path) -> str | None:
    """The metric a search folder's search selected on; None for anything else."""
    try:
        data = json.loads((Path(folder) / SWEEP_MANIFEST).read_text(encoding="utf-8"))
        return data["search"]["spec"]["metric"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_subfolders(paths: list[Path]) -> list[Path]:
    """Each of ``paths`` and the folders directly in it: where a sweep folder may be when a
    user names it or the folder holding it (compare runs/, report runs/)."""
    return [
        folder
        for p in map(Path, paths)
        for folder in [p, *(sorted(c for c in p.iterdir() if c.is_dir()) if p.is_dir() else [])]
    ]


def search_folders(paths: list[Path]) -> list[Path]:
    """The search folders among ``paths`` and the folders they hold."""
    return [folder for folder in with_subfolders(paths) if search_metric(folder) is not None]


def compared_on(paths: list[Path]) -> str | None:
    """What a comparison of ``paths`` sorts by when not told: for search folders alone (of
    one metric), the metric the search selected on; else None, the comparison's own default
    (validation when the runs have it)."""
    folders = search_folders(paths)
    metrics = {search_metric(f) for f in folders}
    return metrics.pop() if folders and len(folders) == len(paths) and len(metrics) == 1 else None


def _runs_in(folder: Path) -> list[Path]:
    """The run folders directly in ``folder``, and those of the sweep folders in it."""
    out = []
    for c in sorted(folder.iterdir()):
        if is_run_dir(c):
            out.append(c)
        elif c.is_dir() and (c / SWEEP_MANIFEST).is_file():
            out += sorted(g for g in c.iterdir() if is_run_dir(g))
    return out


def discover_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Expand arguments into run folders: a run folder, or a folder holding run folders
    (a sweep folder is one; a folder holding sweep folders gives theirs too).

    Returns the run folders (each once, in the order given, children sorted by name)
    and one warning line per argument that is neither.
    """
    found: list[Path] = []
    warnings: list[str] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    for arg in paths:
        p = Path(arg)
        if not p.exists():
            warnings.append(f"{p}: no such file or folder{near_folder(p)}, skipped")
        elif is_run_dir(p):
            add(p)
        elif p.is_dir():
            children = _runs_in(p)
            if children:
                for c in children:
                    add(c)
            else:
                warnings.append(f"{p}: not a run folder and holds none, skipped")
        else:
            warnings.append(f"{p}: not a run folder (no {SUMMARY}, {CONFIG} or {METRICS}), skipped")
    return found, warnings


def load_run(path: Path) -> RunRecord:
    """Read a run folder; a missing or corrupt file becomes a problem line, not an error."""
    run = RunRecord(path=Path(path))
    met_path = run.path / METRICS
    run.summary = _read_mapping(run, SUMMARY, json.loads, "a JSON object")
    # summary.json carries the resolved config as JSON, so compare parses no YAML; run
    # folders written before it did are read from config.yaml.
    config = (run.summary or {}).get("config")
    run.config = config if isinstance(config, dict) else _read_mapping(run, CONFIG, load_yaml, "a mapping")
    if run.summary is not None and run.summary.get("status") == "running" and _gone(run.path, run.summary):
        run.process_gone = True
        run.problems.append(
            f"{SUMMARY} says running but its process{_pid_text(run.summary)} is gone (killed?), so it counts as "
            f"failed; mlp-lab resume {run.path} continues from its last checkpoint"
        )

    if met_path.is_file():
        try:
            run.metrics, bad = read_jsonl(met_path)
            if bad:
                run.problems.append(f"{METRICS} has {bad} unreadable line{'s' if bad > 1 else ''}")
        except OSError:
            run.problems.append(f"{METRICS} is unreadable")
    return run


def _pid_text(summary: dict[str, Any]) -> str:
    return f" {summary['pid']}" if isinstance(summary.get("pid"), int) else ""


def _gone(run_dir: Path, summary: dict[str, Any]) -> bool:
    """A running run's process is gone: its lock is free, or (a folder with no lock file)
    the pid its summary names no longer exists."""
    held = run_lock_held(run_dir)
    return not held if held is not None else process_gone(summary)


def _read_mapping(run: RunRecord, name: str, parse: Callable[[str], Any], kind: str) -> dict[str, Any] | None:
    """One file of a run folder parsed into a dict; None, with a problem line, if it can't be."""
    path = run.path / name
    if not path.is_file():
        run.problems.append(f"{name} is missing")
        return None
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):  # JSONDecodeError is a ValueError
        run.problems.append(f"{name} is corrupt")
        return None
    if not isinstance(data, dict):
        run.problems.append(f"{name} is not {kind}")
        return None
    return data


def load_config_dict(run_dir: Path) -> dict[str, Any]:
    """The resolved config of a run, for --resume. Raises RunError when unusable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder not found: {run_dir}")
    path = run_dir / CONFIG
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run folder: {CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise RunError(f"{path} is corrupt; this run cannot be resumed") from None
    if not isinstance(cfg, dict):
        raise RunError(f"{path} is not a YAML mapping; this run cannot be resumed")
    return cfg


# libyaml's C parser, when PyYAML was built with it, reads a config.yaml about 8x faster
# than the pure-Python one. Same safe constructor: no Python objects, no code.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load``, through libyaml when available. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
