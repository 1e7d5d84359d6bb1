"""Choosing an epoch on validation: the rule every part of mlp-lab shares.

With a validation split, a run's epoch is chosen on it (the best validation accuracy, the
earliest of equals, or the metric early stopping watches), and the test set is read there
once. Early stopping (Keras' and Lightning's rule) counts the epochs since the watched
metric last improved by more than ``min_delta``; both are replayed from the metrics
history, so a resumed run stops where an uninterrupted one would. No torch here.
"""

from __future__ import annotations

import math
from typing import Any

# The metric an epoch is chosen by when a run does not say (no early stopping).
DEFAULT_METRIC = "val_acc"
HIGHER_IS_BETTER = {"val_acc": True, "val_loss": False}


def _value(record: dict[str, Any], metric: str) -> float | None:
    v = record.get(metric)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def select_epoch(history: list[dict[str, Any]], metric: str = DEFAULT_METRIC) -> dict[str, Any] | None:
    """The record of the epoch with the best ``metric`` (the earliest of equals), or None
    when no epoch has a value of it (no validation split)."""
    best: dict[str, Any] | None = None
    higher = HIGHER_IS_BETTER[metric]
    for rec in history:
        v = _value(rec, metric)
        if v is None:
            continue
        b = _value(best, metric) if best is not None else None
        if b is None or (v > b if higher else v < b):
            best = rec
    return best


def selection(history: list[dict[str, Any]], metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """summary.json's selected_epoch, selected_by, selected_test_acc (and the chosen epoch's
    validation value); all None without a validation split."""
    rec = select_epoch(history, metric)
    if rec is None:
        return {"selected_epoch": None, "selected_by": None, "selected_test_acc": None}
    return {
        "selected_epoch": rec["epoch"],
        "selected_by": metric,
        "selected_test_acc": rec.get("test_acc"),
        f"selected_{metric}": rec.get(metric),
    }


def epochs_without_improvement(history: list[dict[str, Any]], metric: str, min_delta: float) -> int:
    """Epochs since ``metric`` last improved on its best by more than ``min_delta``."""
    best: float | None = None
    wait = 0
    higher = HIGHER_IS_BETTER[metric]
    for rec in history:
        v = _value(rec, metric)
        if v is not None and (best is None or (v - best > min_delta if higher else best - v > min_delta)):
            best, wait = v, 0
        else:
            wait += 1
    return wait
