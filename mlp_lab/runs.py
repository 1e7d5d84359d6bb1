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

Writers replace files atomically (temporary file, then rename) so that a reader,
``compare`` say, never sees half a file. Readers never raise on a broken folder: they
report what they could not read and return the rest. No torch here: ``compare`` uses it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from mlp_lab.errors import DISK_FULL, DiskFull, RunError

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


def write_error(e: OSError, path: Path) -> RunError:
    """An OSError from writing ``path`` as the one line a user reads: a full disk says so
    (DiskFull), a read-only or forbidden place says that, with the path either way."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{DISK_FULL} writing {path}" + (" (disk quota exceeded)" if e.errno == errno.EDQUOT else ""))
    if e.errno == errno.EROFS:
        return RunError(f"cannot write {path}: read-only file system; choose a folder you can write to")
    if e.errno == errno.EACCES or e.errno == errno.EPERM:
        return RunError(f"cannot write {path}: permission denied; choose a folder you can write to")
    return RunError(f"cannot write {path}: {e.strerror or e}")


def _open_temp(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` (the write layer's one way to open for writing;
    tests replace it to inject a full disk)."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Replace ``path`` with what ``write(file)`` writes, all or nothing.

    The data goes to a temporary file in the same folder, which is then renamed over
    ``path``: a reader sees the old file or the new one, never half of either. An
    OSError (a full disk, a read-only folder) is a RunError naming ``path``; the old file
    stays as it was.
    """
    path = Path(path)
    try:
        fd, tmp = _open_temp(path)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results and caches are for reading
        os.replace(tmp, path)
    except BaseException as e:
        # Whatever happened (disk full, Ctrl-C), the old file stays and no temp is left.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    atomic_write(path, lambda f: f.write(data))


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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def append_jsonl(path: Path, *records: dict[str, Any]) -> None:
    """Append one line per record and flush them (one fsync), so a finished epoch is on disk
    before the next starts. A failed write leaves none of them: the file ends with its last
    whole record."""
    if not records:
        return
    path = Path(path)
    data = "".join(json.dumps(r, allow_nan=True, default=_json_default) + "\n" for r in records).encode("utf-8")
    try:
        fd = _open_append(path)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)  # no half line: the file ends with its last whole record
            except OSError:
                pass
            raise write_error(e, path) from None
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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


def is_run_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / f).is_file() for f in (SUMMARY, CONFIG, METRICS))


# A sweep folder (mlp-lab sweep) holds its runs one level down, beside this file.
SWEEP_MANIFEST = "manifest.json"


def folder_kind(path: Path) -> str:
    """What ``mlp-lab resume`` continues: "sweep" or "run"; RunError (one line) for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such folder; mlp-lab resume continues a run folder or a sweep folder")
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
            warnings.append(f"{p}: no such file or folder, skipped")
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


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a JSON-lines file and how many lines could not be parsed."""
    records: list[dict[str, Any]] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                bad += 1
    return records, bad


def truncate_jsonl(path: Path, before_epoch: int) -> list[dict[str, Any]]:
    """Keep only the records of ``path`` whose ``epoch`` is below ``before_epoch`` (a
    resumed run redoes the later ones); return them. A missing file stays missing."""
    if not Path(path).exists():
        return []
    kept = [r for r in read_jsonl(path)[0] if isinstance(r.get("epoch"), int) and r["epoch"] < before_epoch]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


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
