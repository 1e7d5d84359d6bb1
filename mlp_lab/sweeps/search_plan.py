"""Planning a search before anything runs: the base config with the sweep's ``set``, a
validation split when it has none, every value the space can produce checked against the
schema, and, for random search, every trial drawn (they depend on nothing else)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from mlp_lab.config import set_value, validate_config
from mlp_lab.errors import ConfigError, shorten
from mlp_lab.schema import ExperimentConfig
from mlp_lab.sweeps.plan import PlannedRun, cell_id
from mlp_lab.sweeps.search import DEFAULT_VAL_SPLIT, SearchSpec, edge_values, sample


def plan_search(
    search: SearchSpec, overrides: dict[str, Any], seeds: list[int], raw: dict[str, Any], path: Path
) -> tuple[list[PlannedRun], dict[str, Any], list[str]]:
    """(the planned runs: every trial of a random search, none yet for TPE; the base config
    a trial's values go into, ``overrides`` (the sweep's ``set``) applied; notes for the plan)."""
    base = copy.deepcopy(raw)
    for key, value in overrides.items():
        try:
            set_value(base, key, value, label="set")
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    notes = []
    if not (base.get("data") or {}).get("val_split"):
        set_value(base, "data.val_split", DEFAULT_VAL_SPLIT)
        notes.append(
            f"the runs' config has data.val_split 0: the search holds out {DEFAULT_VAL_SPLIT:.0%} of the "
            f"training set (data.val_split: {DEFAULT_VAL_SPLIT}) and selects on it, never on the test set"
        )
    validate_config(base, source=f"{path}: base")
    for key, dist in search.space.items():
        try:  # a key that names no field is said once, before any of its values
            set_value(copy.deepcopy(base), key, None, label="search space")
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        for value in edge_values(dist):  # every value the space can produce is a valid config
            trial_config(base, {key: value}, 0, source=f"{path}: search space {key}={shorten(value, 40)}")
    runs: list[PlannedRun] = []
    if search.method == "random":
        for number, values in enumerate(sample(search, search.trials)):
            runs += trial_runs(base, values, number, seeds, len(runs))
    return runs, base, notes


def trial_config(
    base: dict[str, Any], values: dict[str, Any], seed: int, number: int | None = None, source: str = "search"
) -> ExperimentConfig:
    raw = json.loads(json.dumps(base))
    for key, value in values.items():
        try:
            set_value(raw, key, value, label="search space")
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    if number is not None:
        raw["name"] = f"trial{number:03d}"
    set_value(raw, "train.seed", seed)
    return validate_config(raw, source=source)


def trial_runs(
    base: dict[str, Any], values: dict[str, Any], number: int, seeds: list[int], first: int
) -> list[PlannedRun]:
    """One planned run per seed of trial ``number``."""
    out: list[PlannedRun] = []
    for seed in seeds:
        cfg = trial_config(base, values, seed, number, source=f"trial {number}")
        out.append(
            PlannedRun(
                index=first + len(out), cell=cell_id(cfg), seed=seed, config=cfg, varies=dict(values), trial=number
            )
        )
    return out
