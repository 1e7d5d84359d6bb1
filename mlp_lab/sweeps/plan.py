"""The plan layer, at the bottom of ``sweeps/``: what every other module of it speaks.

A planned run (its cell, seed and validated config), a cell's id, the ``Plan`` hooks the
scheduler calls between runs (a grid's are no-ops; a search asks trials and prunes), and
the ``Outcome`` a sweep ends with. It imports nothing of ``sweeps/`` but the folder's
vocabulary, so the spec, the search, the scheduler and the backends all import it and
none of them imports another to get these.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mlp_lab.config import config_to_dict
from mlp_lab.errors import DISK_FULL
from mlp_lab.schema import ExperimentConfig
from mlp_lab.sweeps.folder import DONE, Manifest


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep: its cell, its seed, its validated config, and what varies."""

    index: int
    cell: str
    seed: int
    config: ExperimentConfig
    varies: dict[str, Any] = field(default_factory=dict)  # the cell's grid/case values (and its config file)
    trial: int | None = None  # a search's trial number


def cell_id(cfg: ExperimentConfig) -> str:
    """8 hex digits from the resolved config without its seed and name: stable across machines."""
    d = config_to_dict(cfg)
    d.pop("name", None)
    d.pop("description", None)
    d["train"].pop("seed", None)
    d["data"].pop("data_dir", None)  # where the data lives is not what is trained
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


@dataclass
class Outcome:
    """How the sweep's runs stand once the scheduler returns."""

    counts: dict[str, int] = field(default_factory=dict)
    stopped: bool = False  # a signal stopped the sweep before every run ended
    disk_full: str | None = None  # why no more runs were started: the disk filled up


class Plan:
    """What the scheduler asks between runs. A grid's runs are all in the manifest from the
    start, so every hook is a no-op; a search (``search_runner.SearchPlan``) asks new trials
    as places free up, hears each epoch, and says which runs to stop early."""

    asks = False  # whether more() may add runs (a backend then caps how many run at once)

    def left(self) -> bool:
        """Runs still to add to the manifest."""
        return False

    def more(self) -> list[int]:
        """Add runs to the manifest (called with a free place and nothing queued); their indices."""
        return []

    def total(self, manifest: Manifest) -> int:
        return len(manifest.runs)

    def epoch(self, index: int, record: dict[str, Any] | None = None) -> bool:
        """Run ``index`` finished an epoch (``record``, or read from its folder); True: stop it."""
        return False

    def ended(self, entry: dict[str, Any], stopped: bool) -> dict[str, Any]:
        """Run ``entry`` ended (``stopped``: asked to by ``epoch``); its final entry."""
        return entry

    def close(self) -> None:
        """The loop is over (all done, or stopped)."""


def to_do(manifest: Manifest) -> list[int]:
    """The runs that have not ended for good: pending, interrupted, failed (never a done one twice)."""
    return [r["index"] for r in manifest.runs if r["status"] not in DONE]


def outcome_of(manifest: Manifest, stopped: bool, disk_full: str | None = None) -> Outcome:
    counts: dict[str, int] = {}
    for entry in manifest.runs:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return Outcome(counts=counts, stopped=stopped or disk_full is not None, disk_full=disk_full)


def disk_full_in(entry: dict[str, Any]) -> str | None:
    """The reason of a run that failed because the disk is full, else None."""
    reason = entry.get("reason") or ""
    return reason if entry.get("status") == "failed" and DISK_FULL in reason else None
