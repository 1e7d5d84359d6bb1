"""A run folder as training writes it: one object keeps its books.

``RunWriter`` owns everything ``train`` puts in a run folder (``runs.py`` has the layout
and the readers): the resolved config, one metrics line per finished epoch, the
checkpoint, and ``summary.json``, which it rewrites after every epoch and once more at
the end. It keeps the summary's state (history, warnings, elapsed time across resumes)
so the training loop only says what happened.
"""

from __future__ import annotations

import io
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mlp_lab import atomic_files, run_lock, runs
from mlp_lab.config import config_to_dict, dump_config
from mlp_lab.schema import ExperimentConfig
from mlp_lab.selection import DEFAULT_METRIC, select_epoch, selection


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def best_of(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The maxima over epochs: of test accuracy (chosen on test: optimistic, never a
    headline; the choice is ``selection``'s) and of validation accuracy, with their epochs."""
    if not history:
        return None
    best = max(history, key=lambda r: r["test_acc"])
    out = {"test_acc": best["test_acc"], "epoch": best["epoch"]}
    if "val_acc" in best:
        best_val = max(history, key=lambda r: r["val_acc"])
        out.update(val_acc=best_val["val_acc"], val_epoch=best_val["epoch"])
    return out


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` through an atomic write: a crash leaves the old file, never half a new one.
    Serialised in memory first (an MLP's checkpoint is a few MB): torch's zip writer turns a
    full disk into "enforce fail at inline_container.cc"; the write layer names it."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_files.atomic_write_bytes(path, buf.getbuffer())


class RunWriter:
    """The books of one run folder. ``facts`` are the summary's fixed entries (device,
    threads, versions, parameter count, data, preprocessing); ``progress`` (optional)
    shows warnings as they are raised."""

    def __init__(self, run_dir: Path, cfg: ExperimentConfig, facts: dict[str, Any], progress: Any = None) -> None:
        self.dir = Path(run_dir)
        run_lock.hold_run(self.dir)  # for as long as this process trains it (see run_lock.RUN_LOCK)
        self.cfg = cfg
        self.progress = progress
        self.history: list[dict[str, Any]] = []
        self._started = time.time()
        stopping = cfg.train.early_stopping
        # The metric an epoch is chosen by: the one early stopping watches, else val_acc.
        self.selected_by = stopping.metric if stopping is not None else DEFAULT_METRIC
        self.summary: dict[str, Any] = {
            "name": cfg.name,
            "run_id": self.dir.name,
            "status": "running",
            "started_at": _now(),
            "finished_at": None,
            "duration_s": 0.0,
            "epochs_done": 0,
            "epochs_planned": cfg.train.epochs,
            "final": None,
            "best": None,
            "selected_epoch": None,
            "selected_by": None,
            "selected_test_acc": None,
            **facts,
            "pid": os.getpid(),  # with host: lets readers tell a killed run from a running one
            "host": socket.gethostname(),
            "error": None,
            "message": None,
            "warnings": [],
            # The resolved config as JSON: compare reads it here and parses no YAML.
            "config": config_to_dict(cfg),
        }

    def resume(self, start_epoch: int, prior: dict[str, Any]) -> None:
        """Continue this folder from a checkpoint taken after epoch ``start_epoch - 1``.

        Lines that epochs after the checkpoint wrote (metrics and diagnostics) are dropped,
        since those epochs are redone; the start time, warnings and training time so far
        come from the checkpoint's ``prior`` summary.
        """
        runs.remove_temp_files(self.dir)  # left by a process killed mid-write
        self.history = atomic_files.truncate_jsonl(self.dir / runs.METRICS, before_epoch=start_epoch)
        atomic_files.truncate_jsonl(self.dir / runs.DIAGNOSTICS, before_epoch=start_epoch)
        self.summary.update(
            started_at=prior.get("started_at", self.summary["started_at"]), warnings=list(prior.get("warnings", []))
        )
        self.summary["resumed_at_epoch"] = start_epoch
        self.summary["prior_duration_s"] = float(prior.get("duration_s", 0.0))

    def start(self) -> None:
        """The config and a first summary, before the first step."""
        atomic_files.atomic_write_text(self.dir / runs.CONFIG, dump_config(self.cfg))
        self.write_summary()

    def elapsed(self) -> float:
        """Seconds this run has trained, across resumes."""
        return self.summary.get("prior_duration_s", 0.0) + time.time() - self._started

    def add_epoch(self, record: dict[str, Any]) -> None:
        """A finished epoch: its metrics line is on disk before the next epoch starts."""
        self.history.append(record)
        atomic_files.append_jsonl(self.dir / runs.METRICS, record)

    def warn(self, warnings: list[str]) -> None:
        """Keep each new warning once, and show it."""
        for warning in warnings:
            if warning not in self.summary["warnings"]:
                self.summary["warnings"].append(warning)
                if self.progress is not None:
                    self.progress.warn(warning)

    def keep_if_selected(self, model_state: Any) -> None:
        """best.pt: the weights of the epoch chosen on validation, written when the epoch
        just added is (so far) the one chosen. No validation split: nothing."""
        chosen = select_epoch(self.history, self.selected_by)
        if chosen is not None and chosen is self.history[-1]:
            save_torch(self.dir / runs.BEST_MODEL, model_state)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """``state`` (see checkpoint.capture) plus what the summary needs to go on after a resume."""
        resumable = {k: self.summary[k] for k in ("started_at", "warnings")} | {"duration_s": self.elapsed()}
        save_torch(self.dir / runs.CHECKPOINT, {**state, "summary": resumable})

    def write_summary(self, **changes: Any) -> None:
        self.summary.update(changes)
        self.summary["epochs_done"] = len(self.history)
        self.summary["final"] = self.history[-1] if self.history else None
        self.summary["best"] = best_of(self.history)
        self.summary.update(selection(self.history, self.selected_by))
        self.summary["duration_s"] = round(self.elapsed(), 3)
        atomic_files.atomic_write_json(self.dir / runs.SUMMARY, self.summary)

    def finish(
        self,
        status: str,
        model_state: dict[str, Any] | None = None,
        message: str | None = None,
        error: str | None = None,
        crash_log: str | None = None,
    ) -> None:
        """The last writes: error.log of a crash, model.pt of a completed run, the final summary."""
        if crash_log is not None:
            atomic_files.atomic_write_text(self.dir / "error.log", crash_log)
        if model_state is not None:
            save_torch(self.dir / runs.MODEL, model_state)
        self.summary.pop("pid", None)
        self.summary.pop("host", None)
        ending = {k: v for k, v in (("message", message), ("error", error)) if v is not None}
        self.write_summary(status=status, finished_at=_now(), **ending)
        run_lock.release_run(self.dir)  # ended: nobody trains it now
