"""The sweep folder: ``<runs_dir>/<name>-<timestamp>-<id>/`` holding the resolved sweep file,
the manifest and the run folders (in the format ``train`` writes, so ``compare``, ``show``
and ``mlp-lab resume`` work on them unchanged).

The manifest (``manifest.json``) lists every run: its index, cell, seed, resolved config,
folder and status (``pending`` until it ends, then the run's own status) with the reason
of a failure. Only the process driving the sweep writes it.

What changes while a sweep runs (a run started, ended, its pid; a search's new trial) is
appended to ``manifest.jsonl``, one JSON line per event, fsync'd: an event costs the same
in a sweep of 10 runs or 10,000 (rewriting the whole manifest each time grew as n², 522 MB
written for a 300-trial search). ``load_manifest`` replays the journal over the snapshot (a
torn last line, from a process killed mid-write, is ignored); the snapshot is written
whole, and the journal dropped, when a sweep starts and when it ends (compaction), so a
sweep folder at rest holds one ``manifest.json``. A config is written once, in its run's
entry, never in an event.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlp_lab import atomic_files, run_lock, runs
from mlp_lab.errors import RunError, shorten

SWEEP_FILE = "sweep.yaml"
MANIFEST = runs.SWEEP_MANIFEST
JOURNAL = "manifest.jsonl"
# What an event may set in an entry: a run's state, never what it is (cell, seed, config).
EVENT_FIELDS = {"status", "folder", "reason", "seconds", "pid", "host"}
LOCK = ".sweep.lock"
FORMAT = "mlp-lab sweep v1"
# A run that ended this way is done: a diverged run would diverge again on the same seed.
DONE = ("completed", "diverged", "pruned")  # a pruned trial was stopped on purpose: it is done too


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

    @property
    def journal(self) -> Path:
        return self.folder / JOURNAL

    def save(self) -> None:
        """The whole manifest, compacted: the journal's events are in it now. (A crash
        between the two steps leaves events the snapshot has: replaying them is harmless.)"""
        atomic_files.atomic_write_json(self.path, self.data)
        self.journal.unlink(missing_ok=True)

    def update(self, index: int, **fields: Any) -> None:
        self.runs[index].update(fields)
        atomic_files.append_jsonl(self.journal, {"run": index, "set": fields})

    def add(self, entries: list[dict[str, Any]]) -> None:
        """New runs (a search's trial): each entry, its config with it, once."""
        for entry in entries:
            self.runs.append(entry)
            atomic_files.append_jsonl(self.journal, {"add": entry})


def prepare_run(manifest: Manifest, index: int) -> tuple[Path, bool]:
    """The folder run ``index`` trains into, marked running in the manifest, and whether it
    continues from its checkpoint (an interrupted run, or a failed one that left one) or
    starts anew (in a new folder with its config.yaml: a failed run's old folder is
    removed). A folder that says it ended for good, or that a live process still writes,
    is never touched (RunError): ``settle`` has made the manifest agree with the folders."""
    from mlp_lab.config import config_from_dict, dump_config

    entry = manifest.runs[index]
    old = manifest.folder / entry["folder"] if entry["folder"] else None
    if old is not None and old.is_dir():
        status, _ = run_ending(old)
        if status in DONE or status is None and writer_alive(old, entry):
            raise RunError(f"{old}: {'ended ' + status if status else 'still being written'}; not trained again")
    resume = entry["status"] in ("interrupted", "failed") and old is not None and (old / runs.CHECKPOINT).exists()
    if resume and old is not None:
        folder = old
        mark_summary(folder, entry, status="running", message=None)
    else:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        folder = runs.create_run_dir(manifest.folder, entry["config"]["name"])
        try:
            atomic_files.atomic_write_text(folder / runs.CONFIG, dump_config(config_from_dict(entry["config"])))
            mark_summary(folder, entry, status="running")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # no empty folder beside the runs
            raise
    manifest.update(index, folder=folder.name, status="running", reason=None)
    return folder, resume


def mark_summary(folder: Path, entry: dict[str, Any], **fields: Any) -> None:
    """Set ``fields`` in the run folder's summary.json (a first one if it has none). The
    sweep writes "running" before a run's process starts, so that compare shows a starting
    run as running (not as a folder without a summary), and "failed", with the reason, for
    a run that died without writing its own ending."""
    summary = runs.load_run(folder).summary or {
        "name": entry["config"].get("name"),
        "run_id": folder.name,
        "epochs_done": 0,
        "epochs_planned": entry["config"].get("train", {}).get("epochs"),
        "config": entry["config"],
    }
    summary.pop("pid", None)
    summary.pop("host", None)
    summary.update(fields)
    atomic_files.atomic_write_json(folder / runs.SUMMARY, summary)


def run_ending(folder: Path) -> tuple[str | None, str | None]:
    """A run folder's own ending, from its summary: (status, the reason of any status but
    completed); (None, None) when it left no finished summary (it died before writing one)."""
    summary = runs.load_run(folder).summary if folder.is_dir() else None
    status = (summary or {}).get("status")
    if status in (None, "running"):
        return None, None
    return status, None if status == "completed" else (summary or {}).get("message")


def entry_of(run: Any) -> dict[str, Any]:
    """The manifest entry of a planned run (a grid's or a search's), pending."""
    from mlp_lab.config import config_to_dict

    entry = {
        "index": run.index,
        "cell": run.cell,
        "seed": run.seed,
        "varies": run.varies,
        "status": "pending",
        "folder": None,
        "reason": None,
        "config": config_to_dict(run.config),
    }
    if run.trial is not None:
        entry["trial"] = run.trial
    return entry


def create_sweep_folder(runs_dir: Path, sweep: Any) -> Manifest:
    """A new sweep folder with the resolved sweep file and a manifest of pending runs."""
    folder = runs.create_run_dir(runs_dir, sweep.name)
    try:  # all or nothing: a folder without its manifest could be neither run nor resumed
        atomic_files.atomic_write_text(folder / SWEEP_FILE, yaml.safe_dump(sweep.resolved(), sort_keys=False))
        data: dict[str, Any] = {
            "format": FORMAT,
            "name": sweep.name,
            "source": str(sweep.path),
            "runs": [entry_of(r) for r in sweep.runs],
        }
        if sweep.spec.search is not None:  # what asking more trials and resuming need
            data["search"] = {
                "spec": sweep.spec.search.model_dump(),
                "base": sweep.search_base,
                "seeds": sweep.spec.seed_list(),
            }
        manifest = Manifest(folder / MANIFEST, data)
        manifest.save()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return manifest


def writer_alive(folder: Path, entry: dict[str, Any]) -> bool:
    """Whether a process may still write ``folder``: its lock is held (run_lock.RUN_LOCK; a
    free one is evidence enough, whatever pid a summary names). With no lock file yet, the
    pid its summary names, or the one the manifest recorded when it started the run, is
    alive on this host. Dead only on evidence."""
    held = run_lock.run_lock_held(folder) if folder.is_dir() else None
    if held is not None:
        return held
    summary = runs.load_run(folder).summary if folder.is_dir() else None
    for owner in (summary or {}, entry):
        if isinstance(owner.get("pid"), int) and not run_lock.process_gone(owner):
            return True
    return False


def settle(manifest: Manifest, wait_s: float = 30.0) -> None:
    """Make the manifest agree with the run folders before anything is started: a run's own
    folder is the truth about it. A run whose folder says completed or diverged is done,
    whatever the manifest says. A run left running by a sweep process that died is waited
    for while its process still writes (it ends within seconds, interrupted, when it sees
    its driver gone), then continues from its checkpoint; a RunError if it does not end."""
    deadline = time.monotonic() + wait_s
    for entry in manifest.runs:
        folder = manifest.folder / entry["folder"] if entry["folder"] else None
        if folder is None or not folder.is_dir():
            if entry["status"] not in DONE:
                entry["status"] = "pending"  # nothing of it is on disk: it starts anew
            continue
        status, reason = run_ending(folder)
        if status is None:  # no final summary: its process may still be writing it
            while writer_alive(folder, entry):
                if time.monotonic() > deadline:
                    raise RunError(
                        f"{folder} is still being trained by process {entry.get('pid') or '?'} (left by a "
                        "sweep process that died?); wait for it to end, or stop it, then resume"
                    )
                time.sleep(0.2)
            status, reason = run_ending(folder)
        if status is not None:
            entry.update(status=status, reason=reason)
        elif entry["status"] not in DONE:
            entry.update(status="failed", reason=entry.get("reason") or "its process ended without a final summary")
    manifest.save()


def load_manifest(folder: Path) -> Manifest:
    """The manifest of a sweep folder; RunError (one line) when the folder is not a sweep."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise RunError(f"{folder}: no such sweep folder{runs.near_folder(folder)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(
            f"{folder} is not a sweep folder ({MANIFEST} is missing); mlp-lab sweep FILE.yaml starts one"
        ) from None
    except (OSError, ValueError):
        raise RunError(f"{path} is corrupt; {_cannot_resume(folder)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        raise RunError(f"{path} is not an mlp-lab sweep manifest; {_cannot_resume(folder)}")
    _replay(folder / JOURNAL, data["runs"])
    for i, entry in enumerate(data["runs"]):
        problem = _entry_problem(i, entry)
        if problem:
            raise RunError(
                f"{path}: run {i}: {problem}; the manifest was edited or is corrupt: put the entry back "
                f"as it was to resume; {_runs_intact(folder)}"
            )
    return Manifest(path, data)


def _cannot_resume(folder: Path) -> str:
    """What is left to a user whose sweep state cannot be read: its runs are intact."""
    return f"this sweep cannot be resumed; {_runs_intact(folder)}"


def _runs_intact(folder: Path) -> str:
    return f"its runs are intact (mlp-lab compare {folder} reads them), and mlp-lab sweep FILE.yaml starts it anew"


def _replay(journal: Path, entries: list[Any]) -> None:
    """Apply the journal's events to the snapshot's entries, in order; RunError (one line)
    for an event that is not one. An event the snapshot already holds (written before a
    compaction that did not get to drop the journal) applies again to the same effect."""
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError:
        raise RunError(f"{journal} is unreadable; {_cannot_resume(journal.parent)}") from None
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if number == len(lines):  # the last line, torn by a process killed as it wrote
                return
            raise RunError(
                f"{journal}: line {number} is not JSON; the journal was edited or is corrupt, so "
                f"{_cannot_resume(journal.parent)}"
            ) from None
        problem = _apply(event, entries)
        if problem:
            raise RunError(
                f"{journal}: line {number}: {problem}; the journal was edited or is corrupt, so "
                f"{_cannot_resume(journal.parent)}"
            )


def _apply(event: Any, entries: list[Any]) -> str | None:
    """Apply one event; what is wrong with it, or None."""
    if isinstance(event, dict) and isinstance(event.get("add"), dict):
        index = event["add"].get("index")
        if index == len(entries):
            entries.append(event["add"])
        elif not (isinstance(index, int) and 0 <= index < len(entries)):
            return f"adds run {shorten(index)}, but the manifest has {len(entries)} runs"
        return None
    if not (isinstance(event, dict) and isinstance(event.get("set"), dict)):
        return f"{shorten(event)} is not an event"
    index = event.get("run")
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(entries)):
        return f"run {shorten(index)} is not a run of the manifest"
    unknown = set(event["set"]) - EVENT_FIELDS
    if unknown:
        return f"sets {', '.join(sorted(unknown))}, which no event changes"
    entries[index].update(event["set"])
    return None


STATUSES = ("pending", *runs.STATUSES)  # a manifest entry: not started yet, or its run folder's status


def _entry_problem(i: int, entry: Any) -> str | None:
    """What is wrong with one manifest entry, or None."""
    from mlp_lab.config import config_from_dict
    from mlp_lab.errors import ConfigError

    if not isinstance(entry, dict):
        return f"{shorten(entry)} is not an entry"
    if entry.get("index") != i:
        return f"index {shorten(entry.get('index'))}, expected {i}"
    if entry.get("status") not in STATUSES:
        return f"status {shorten(entry.get('status'))} is not one of {', '.join(STATUSES)}"
    folder = entry.get("folder")
    if folder is not None and (not isinstance(folder, str) or not _SAFE_NAME.fullmatch(folder)):
        return f"folder {shorten(folder)} is not the name of a run folder in the sweep folder"
    seed, config = entry.get("seed"), entry.get("config")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"seed {shorten(seed)} is not an integer"
    if not isinstance(config, dict):
        return f"config {shorten(config)} is not a config"
    try:
        cfg = config_from_dict(config, source="config")
    except ConfigError as e:
        return str(e)
    if cfg.train.seed != seed:
        return f"seed {seed} but its config trains seed {cfg.train.seed}"
    return None


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@contextmanager
def held(folder: Path) -> Iterator[None]:
    """Hold the sweep folder for this process: a second process driving the same sweep
    (a concurrent --resume) is refused with a RunError instead of running runs twice.

    The lock file goes when the sweep ends (a folder at rest keeps none), removed while
    still held. So a process that opened the file just before that holds a lock on a file
    no longer there: after locking, it checks that the file it holds is the one at the
    path, and locks again if not. Two processes can never both hold the sweep."""
    lock_path = Path(folder) / LOCK
    while True:
        f = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below or after the sweep
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            f.close()
            raise RunError(
                f"{folder} is being run by {owner}; wait for it to end (or stop it) and resume then"
            ) from None
        if _same_file(f, lock_path):
            break
        f.close()  # removed by the sweep that held it as we opened it: lock the new one
    with f:
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            try:  # a sweep folder at rest keeps no lock file (a resume makes it again)
                lock_path.unlink()
                (Path(folder) / ".logs").rmdir()  # only when empty: logs of failed runs stay
            except OSError:
                pass
            fcntl.flock(f, fcntl.LOCK_UN)


def _same_file(f: Any, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False
