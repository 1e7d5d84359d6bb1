"""Reading one run folder into a ``Row``: its applicable config fields, flattened, and its
headline metrics (final, best, epochs, time), tolerant of whatever is broken."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlp_lab import runs
from mlp_lab.keys import applicable_fields
from mlp_lab.results.values import METRICS, integer, number

IDENTITY = ("run", "path", "status")


@dataclass
class Row:
    """One run as compare sees it: flattened config, headline metrics, history."""

    run: str
    path: Path
    status: str
    params: dict[str, Any] | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "run":
            return self.run
        if key == "path":
            return str(self.path)
        if key == "status":
            return self.status
        if key in METRICS:
            return self.metrics.get(key, default)
        if self.params is not None and key in self.params:
            return self.params[key]
        return default


def _epoch_of(rec: dict[str, Any] | None) -> int:
    e = integer((rec or {}).get("epoch"))
    return e if e is not None else -1


def headline_metrics(summary: dict[str, Any] | None, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and best metrics, epochs and wall time of a run.

    The newer of metrics.jsonl's last line and summary.json's ``final`` wins: a summary
    can lag a running run, and a truncated metrics file can lag a finished one.
    """
    summary = summary or {}
    history = [r for r in history if isinstance(r.get("epoch"), int) and not isinstance(r.get("epoch"), bool)]
    final = summary.get("final") if isinstance(summary.get("final"), dict) else None
    if history and (final is None or _epoch_of(history[-1]) > _epoch_of(final)):
        final = history[-1]
    final = final or {}

    m: dict[str, Any] = {}
    for key in ("test_acc", "val_acc", "test_loss", "val_loss", "train_loss", "train_acc"):
        m[key] = number(final.get(key))

    best_acc, best_epoch = _best_of(history, "test_acc")
    best_val, _ = _best_of(history, "val_acc")
    recorded = summary.get("best")
    sbest: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    if best_acc is None or (integer(sbest.get("epoch")) or -1) > len(history):
        best_acc, best_epoch = number(sbest.get("test_acc")), integer(sbest.get("epoch"))
        best_val = number(sbest.get("val_acc"))
    m["best_test_acc"], m["best_epoch"], m["best_val_acc"] = best_acc, best_epoch, best_val
    m["selected_epoch"], m["selected_test_acc"] = _selected(history, summary)

    done = integer(summary.get("epochs_done"))
    if done is None or len(history) > done:
        done = max(len(history), _epoch_of(final)) if (history or final) else done
    m["epochs_done"] = done
    m["epochs_planned"] = integer(summary.get("epochs_planned"))
    duration = number(summary.get("duration_s"))
    if duration is None and history:
        secs = [number(r.get("seconds")) for r in history]
        duration = sum(s for s in secs if s is not None and math.isfinite(s)) or None
    m["duration_s"] = duration
    return m


def _selected(history: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[int | None, float | None]:
    """The epoch chosen on validation (the best val_acc, earliest of equals) and the test
    accuracy there; from the summary when the metrics file lost those epochs."""
    best_val, epoch = _best_of(history, "val_acc")
    if best_val is not None:
        rec = next(r for r in history if integer(r.get("epoch")) == epoch)
        return epoch, number(rec.get("test_acc"))
    return integer(summary.get("selected_epoch")), number(summary.get("selected_test_acc"))


def _best_of(history: list[dict[str, Any]], key: str) -> tuple[float | None, int | None]:
    best: tuple[float | None, int | None] = (None, None)
    for rec in history:
        v = number(rec.get(key))
        if v is not None and math.isfinite(v) and (best[0] is None or v > best[0]):
            best = (v, integer(rec.get("epoch")))
    return best


def read_row(path: Path) -> Row | None:
    """A run folder as a Row (with its problems listed), or None when nothing is readable."""
    rec = runs.load_run(path)
    if rec.config is None and rec.summary is None and not rec.metrics:
        return None
    return Row(
        run=rec.name,
        path=rec.path,
        status=rec.status,
        params=applicable_fields(rec.config) if rec.config is not None else None,
        metrics=headline_metrics(rec.summary, rec.metrics),
        history=rec.metrics,
        problems=list(rec.problems),
    )
