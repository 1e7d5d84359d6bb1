"""The sweep file: many runs from one YAML file, all resolved and validated before any runs.

```yaml
name: relu-inits                  # default: the file's name
base: relu_adam                   # one train config: a path relative to this file, or a shipped name ...
# configs: [../lecture/init_*.yaml] # ... or a list of configs and globs: each one a case
set: {train.epochs: 5}            # overrides for every run, --set's key paths
grid:                             # the cartesian product of these lists
  model.activation: [relu, tanh]
cases:                            # values that change together; crossed with the grid
  - {optimizer.name: sgd, optimizer.lr: 0.1}
seeds: 3                          # n: train.seed 0..n-1; or a list: [0, 7, 42]
```

A cell is one config (a base or listed config, crossed with a grid point and a case);
each cell runs once per seed. A cell's id comes from its resolved config without seed and
name, so it is the same on every machine and in every sweep that has that config.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlp_lab import keys
from mlp_lab.config import (
    config_to_dict,
    default_name,
    parse_yaml_value,
    read_yaml_mapping,
    set_value,
    validate_config,
)
from mlp_lab.errors import ConfigError, did_you_mean, shorten
from mlp_lab.results.values import fmt_value
from mlp_lab.schema import ExperimentConfig
from mlp_lab.shipped import near_shipped, shipped_named
from mlp_lab.sweeps.plan import PlannedRun, cell_id
from mlp_lab.sweeps.search import SearchSpec
from mlp_lab.sweeps.search_plan import plan_search

MAX_RUNS_WITHOUT_YES = 10_000


class SweepFile(BaseModel):
    """What a sweep file may say (unknown keys are errors, with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="The sweep's name; default: the file's name.")
    base: str | None = Field(None, description="One train config, relative to the sweep file.")
    configs: list[str] | None = Field(
        None, description="Train configs or globs, relative to the sweep file: each one a case."
    )
    set: dict[str, Any] = Field(default_factory=dict, description="Overrides for every run, as --set's key paths.")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Key path -> values: the cartesian product.")
    cases: list[dict[str, Any]] = Field(
        default_factory=list, description="Values that change together; crossed with the grid."
    )
    seeds: int | list[int] = Field(1, description="n: train.seed 0..n-1; or a list of seeds.")
    search: SearchSpec | None = Field(None, description="A hyperparameter search instead of a grid (see search.py).")

    @model_validator(mode="after")
    def _one_source(self) -> SweepFile:
        if (self.base is None) == (self.configs is None):
            raise ValueError("give exactly one of base (one config) and configs (a list of configs and globs)")
        if self.search is not None:
            if self.grid or self.cases:
                raise ValueError(
                    "search: a search samples its own values; it cannot go with grid or cases "
                    "(put fixed values in set, ranges in search.space)"
                )
            if self.configs is not None:
                raise ValueError("search: searches around one config: give base, not configs")
            if self.search.prune.rule != "none" and len(self.seed_list()) > 1:
                raise ValueError(
                    f"search: prune {self.search.prune.rule} with {len(self.seed_list())} seeds: a trial "
                    "is judged on the mean of its seeds, which no epoch-by-epoch pruner sees; use seeds: 1 "
                    "to prune, or prune: {rule: none} to average seeds"
                )
        return self

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid {key}: an empty list gives no runs; give one value or more")
        return grid

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        # Anything but a count or a list is this one message, not pydantic's per-branch
        # wording of the union (`seeds.int: Input should be ...`).
        if isinstance(v, bool) or not isinstance(v, (int, list)) or (isinstance(v, int) and v < 1):
            raise ValueError(f"seeds: {shorten(v)}: give a count of 1 or more, or a list of seeds")
        if isinstance(v, list):
            if not v:
                raise ValueError("seeds: [] gives no runs; give a count or a list of seeds")
            if any(isinstance(s, bool) or not isinstance(s, int) for s in v):
                raise ValueError(f"seeds: {shorten(v)}: every seed must be an integer")
            if len(set(v)) < len(v):
                raise ValueError(f"seeds: {shorten(v)}: a seed repeats; each seed runs once")
        return v

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass
class Sweep:
    name: str
    path: Path
    spec: SweepFile
    runs: list[PlannedRun]
    search_base: dict[str, Any] | None = None  # a search's config before a trial's values (its set applied)
    notes: list[str] = field(default_factory=list)  # what the plan decided for the user (a search's validation split)

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(r.cell for r in self.runs))

    def resolved(self) -> dict[str, Any]:
        """The sweep file as it was run: its fields, the config files a glob matched, each cell."""
        return {
            "name": self.name,
            "source": str(self.path),
            **self.spec.model_dump(exclude={"name"}, exclude_none=True),
            "cells": {r.cell: r.varies for r in self.runs},
        }


def load_sweep(path: str | Path, overrides: list[str] | None = None, yes: bool = False) -> Sweep:
    """Read, expand and validate a sweep file: every run's config is resolved here, and the
    first problem is a one-line ConfigError naming the cell and the key."""
    path = Path(path)
    raw = read_yaml_mapping(
        path, "sweep", "a YAML mapping (base or configs, set, grid, cases, seeds)", "'base: relu_adam.yaml'"
    )
    return _sweep(raw, path, overrides, yes)


def sweep_from_options(
    config: str | Path,
    grid: list[str],
    seeds: str | None,
    overrides: list[str] | None = None,
    yes: bool = False,
    search: SearchOptions | None = None,
) -> Sweep:
    """The shorthand ``--config BASE.yaml --grid key=v1,v2 ... --seeds N`` (or ``--search
    key=kind:low:high ... --trials N``): the sweep file that says ``base: BASE.yaml``, that
    grid (or search) and those seeds, named after the base config."""
    config = Path(config)
    raw: dict[str, Any] = {"name": default_name(config), "base": config.name, "grid": {}}
    if search is not None and search.space:
        if grid:
            raise ConfigError(
                "--search and --grid: a search samples its own values, so it takes no grid; "
                "give one of them (fix other fields with --set)"
            )
        raw["search"] = search.section()
    for item in grid:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(
                f"--grid {shorten(item)}: expected key.path=value1,value2 (e.g. --grid model.activation=relu,tanh)"
            )
        if key in raw["grid"]:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        raw["grid"][key] = parse_yaml_value(key, f"[{values}]")  # YAML flow: relu,tanh and [64],[128,128] alike
    if seeds is not None:
        raw["seeds"] = parse_yaml_value("--seeds", seeds)
    return _sweep(raw, config, overrides, yes, flags=SHORTHAND_FLAGS)


def _number(text: str) -> Any:
    """A bound as typed: an int, else a float, else the text (the schema then says what is wrong)."""
    for kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            pass
    return text.strip()


@dataclass
class SearchOptions:
    """``sweep --search key=kind:args ... --trials N [--method M] [--prune RULE]``: a search
    section from the command line. ``--search optimizer.lr=log_uniform:1e-4:1e-1`` is the
    file's ``optimizer.lr: {log_uniform: [1e-4, 1e-1]}``; ``--search model.activation=choice:relu,tanh``
    its ``{choice: [relu, tanh]}`` (values as --grid reads them)."""

    space: list[str] = field(default_factory=list)
    trials: int | None = None
    method: str | None = None
    prune: str | None = None

    def section(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trials": self.trials, "space": {}}
        if self.method is not None:
            out["method"] = self.method
        if self.prune is not None:
            out["prune"] = {"rule": self.prune}
        for item in self.space:
            key, sep, dist = item.partition("=")
            kind, colon, args = dist.partition(":")
            key, kind = key.strip(), kind.strip()
            if not sep or not key or not colon or not args.strip():
                raise ConfigError(
                    f"--search {shorten(item)}: expected key.path=kind:low:high or key.path=choice:v1,v2 "
                    "(e.g. --search optimizer.lr=log_uniform:1e-4:1e-1)"
                )
            if key in out["space"]:
                raise ConfigError(f"--search {key}: given twice; one distribution per key")
            if kind == "choice":
                out["space"][key] = {kind: parse_yaml_value(key, f"[{args}]")}
            else:  # low:high, numbers as Python writes them (YAML reads 1e-4 as text)
                out["space"][key] = {kind: [_number(x) for x in args.split(":")]}
        if self.trials is None:
            raise ConfigError("--search needs --trials N: how many configs to try")
        return out  # messages name the base config; base is beside itself


def _sweep(
    raw: dict[str, Any], path: Path, overrides: list[str] | None, yes: bool, flags: dict[str, str] | None = None
) -> Sweep:
    given: list[str] = []  # keys --set gives, which must not be keys the sweep varies
    for item in overrides or []:  # --set on the command line joins the file's set
        key, sep, value = item.partition("=")
        if not sep or not isinstance(raw.setdefault("set", {}), dict):
            raise ConfigError(f"--set {shorten(item)}: expected key.path=value, e.g. --set train.epochs=5")
        raw["set"][key.strip()] = parse_yaml_value(key.strip(), value)
        given.append(key.strip())
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_flag_problem(e, flags or {}) or f"{path}: {_describe(e)}") from None
    name = spec.name or default_name(path)
    sources, found = _sources(spec, path)
    _check_set_varies_nothing(spec, sources, given, path)
    found += _seeds_given_elsewhere(spec, sources, given, path)
    if spec.search is not None:
        runs, base, notes = plan_search(spec.search, spec.set, spec.seed_list(), sources[0][1], path)
        return Sweep(name=name, path=path, spec=spec, runs=runs, search_base=base, notes=found + notes)
    runs = _expand(spec, sources, path)
    if len(runs) > MAX_RUNS_WITHOUT_YES and not yes:
        raise ConfigError(f"{path}: {len(runs):,} runs; more than {MAX_RUNS_WITHOUT_YES:,} needs --yes")
    return Sweep(name=name, path=path, spec=spec, runs=runs, notes=found)


# Where the shorthand's flags put their values in the sweep file it stands for: what is
# wrong with one of them names the flag the user typed, not the base config.
SHORTHAND_FLAGS = {
    "search.trials": "--trials",
    "search.method": "--method",
    "search.prune": "--prune",
    "search.space": "--search",
    "seeds": "--seeds",
}


def _flag_problem(e: ValidationError, flags: dict[str, str]) -> str | None:
    """``--method foo: input should be 'random' or 'tpe'`` for a value a flag gave, else None."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    flag = next((f for key, f in flags.items() if loc == key or loc.startswith(key + ".")), None)
    if flag is None:
        return None
    given = err.get("input")
    # the validators' own messages start with the field ("space optimizer.lr: ...", "seeds: 3.5: ...")
    msg = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("space ").removeprefix("seeds: ")
    if not isinstance(given, (str, int, float)):
        return f"{flag} {msg}"
    msg = msg.removeprefix(f"{shorten(given)}: ")
    return f"{flag} {shorten(given)}: {msg[0].lower() + msg[1:]}"


def _describe(e: ValidationError) -> str:
    """pydantic's report of a sweep file, as one line."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unknown key '{loc}'{did_you_mean(loc, SweepFile.model_fields)}; allowed: {', '.join(SweepFile.model_fields)}"
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if err.get("type") in ("list_type", "dict_type", "int_type", "string_type"):
        return f"{loc}: {shorten(err.get('input'))}: {msg[0].lower() + msg[1:]}"
    return msg if not loc or msg.startswith(loc.split(".")[0]) else f"{loc}: {msg}"


def _sources(spec: SweepFile, path: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """The train configs the sweep starts from, each with its raw mapping; and a note when
    the base was not beside the sweep file and the shipped config of its name stood in."""
    here = path.parent
    notes: list[str] = []
    if spec.base is not None:
        files = [_base_file(path, spec.base)]
        # (a shipped name is bare: relu_adam, lecture/opt_sgd_momentum; a path has a suffix or a ./)
        looks_like_a_path = spec.base.endswith((".yaml", ".yml")) or spec.base.startswith((".", "/"))
        if looks_like_a_path and not (here / spec.base).exists():
            notes.append(f"base {spec.base}: not beside {path.name}; using the shipped config {files[0]}")
    else:
        files = []
        for pattern in spec.configs or []:
            matched = sorted(Path(p) for p in glob.glob(str(here / pattern)))
            if not matched:
                raise ConfigError(f"{path}: configs: {shorten(pattern)} matches no file (relative to {here})")
            files += [m for m in matched if m not in files]
    out = []
    for f in files:
        raw = read_yaml_mapping(f, "config", "a YAML mapping of sections", "'model: {activation: relu}'")
        raw.setdefault("name", default_name(f))
        out.append((f, raw))
    return out, notes


def _check_set_varies_nothing(
    spec: SweepFile, sources: list[tuple[Path, dict[str, Any]]], given: list[str], path: Path
) -> None:
    """A key the sweep varies (its grid, its cases, or where its config files differ) set
    for every run would be overridden in some runs and not others: an error, not a guess."""
    varied = (
        {k: "grid" for k in spec.grid}
        | {k: "cases" for case in spec.cases for k in case}
        | {k: "search space" for k in (spec.search.space if spec.search else {})}
    )
    if len(sources) > 1:
        flat = [keys.flatten(raw) for _, raw in sources]
        for k in set().union(*flat) - {"name", "description"}:
            if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1:
                varied.setdefault(k, "configs")
    for key in spec.set:
        hits = [v for v in varied if v == key or v.startswith(key + ".") or key.startswith(v + ".")]
        if hits:
            where = "--set" if key in given else f"{path}: set"
            raise ConfigError(
                f"{where} {key}: the sweep varies {hits[0]} (its {varied[hits[0]]}), so one value for "
                f"every run cannot hold; change it in the {varied[hits[0]]} instead"
            )


def _seeds_given_elsewhere(
    spec: SweepFile, sources: list[tuple[Path, dict[str, Any]]], given: list[str], path: Path
) -> list[str]:
    """Every run's train.seed comes from the sweep's seeds: train.seed in its set, grid,
    cases or search space would be overridden in silence (an error); a config's own seed
    that the seeds leave out is a note."""
    places = [("--set" if "train.seed" in given else f"{path}: set", spec.set), (f"{path}: grid", spec.grid)]
    places += [(f"{path}: cases", case) for case in spec.cases]
    places += [(f"{path}: search space", spec.search.space)] if spec.search is not None else []
    for where, values in places:
        section = values.get("train")  # (set may give the section whole: train: {seed: 3})
        if "train.seed" in values or (isinstance(section, dict) and "seed" in section):
            raise ConfigError(
                f"{where} train.seed: every run's seed comes from the sweep's seeds (a count or a list, "
                "seeds: [0, 7, 42], or --seeds), which would override it; give the seeds there"
            )
    notes = []
    for file, raw in sources:
        train = raw.get("train")
        seed = train.get("seed") if isinstance(train, dict) else None
        if isinstance(seed, int) and seed not in spec.seed_list():
            notes.append(
                f"{file.name} sets train.seed {seed}; a sweep runs the seeds in its seeds: "
                f"({shorten(spec.seed_list())} here), so give seeds: [{seed}] (or --seeds [{seed}]) to run that one"
            )
    return notes


def _base_file(sweep: Path, base: str) -> Path:
    """``base`` beside the sweep file; else the shipped config of that name (the shipped
    sweep files name theirs so: ``base: relu_adam`` resolves the same from any folder), said
    in a note. Never a file of that name in the current folder: the same sweep file would
    train another config from another folder."""
    path = sweep.parent / base
    if path.exists():
        return path
    entry = shipped_named(base, "config")
    if entry is not None:
        return entry.path
    here = Path(base)
    hint = (
        f"; for ./{here}, write its path from the sweep file's folder: base: {os.path.relpath(here, sweep.parent)}"
        if here.is_file()
        else near_shipped(base, "config")
    )
    raise ConfigError(
        f"{sweep}: base: {shorten(base)}: no such file beside the sweep file ({path}), "
        f"and no shipped config has that name{hint}"
    )


def _expand(spec: SweepFile, sources: list[tuple[Path, dict[str, Any]]], path: Path) -> list[PlannedRun]:
    grid_keys = list(spec.grid)
    points = [dict(zip(grid_keys, combo)) for combo in itertools.product(*(spec.grid[k] for k in grid_keys))] or [{}]
    cases = spec.cases or [{}]
    runs: list[PlannedRun] = []
    seen: dict[str, str] = {}
    for (file, base), point, case in itertools.product(sources, points, cases):
        varies = ({"config": file.name} if spec.configs is not None else {}) | point | case
        cell_name = ", ".join(f"{k}={v}" for k, v in varies.items()) or "the base config"
        raw = json.loads(json.dumps(base))  # a deep copy the overrides may write into
        for label, values in (("set", spec.set), ("grid", point), ("cases", case)):
            for key, value in values.items():
                try:
                    set_value(raw, key, value, label=label)
                except ConfigError as e:
                    raise ConfigError(f"{path}: {e}") from None
        cfg = validate_config(raw, source=f"{path}: cell {cell_name}")
        varies = _as_validated(varies, cfg)  # 1e-3 (a string to YAML) is shown as the 0.001 it trains with
        if varies:  # runs are named by what their cell varies, so compare's rows and verdicts say it
            # (a case that names itself is called by its name, not by its values)
            named = {k: v for k, v in varies.items() if k == "name" or k not in case} if "name" in case else varies
            cfg.name = _run_name(named, cfg.name)
        cell = cell_id(cfg)
        if cell in seen:
            raise ConfigError(
                f"{path}: cells {seen[cell]} and {cell_name} come out identical; "
                f"drop one (a grid value or case that changes nothing?)"
            )
        seen[cell] = cell_name
        for seed in spec.seed_list():
            run_cfg = cfg.model_copy(deep=True)
            run_cfg.train.seed = seed
            runs.append(PlannedRun(index=len(runs), cell=cell, seed=seed, config=run_cfg, varies=varies))
    return runs


def _as_validated(varies: dict[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    """The cell's values as the validated config holds them (a whole section as given)."""
    flat = keys.flatten(config_to_dict(cfg))
    return {k: v if k == "config" else flat.get(k, v) for k, v in varies.items()}


def _run_name(varies: dict[str, Any], fallback: Any) -> str:
    """'tanh-kaiming_normal-adam-0.001' from a cell's values (a config file by its stem),
    spelt as compare's columns spell them (1e+06 as 1e06, where a name has no '+')."""
    parts = [Path(v).stem if k == "config" else fmt_value(v, None).replace("e+", "e") for k, v in varies.items()]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.\-]+", "_", part).strip("_") for part in parts).strip("._-")
    name = re.sub(r"\.{2,}", ".", name)[:64].rstrip("._-")
    return name if name and name[0].isalnum() else str(fallback or "run")
