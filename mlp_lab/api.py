"""The library for notebooks: train, load and compare runs with the functions the CLI uses.

    import mlp_lab
    run = mlp_lab.train("configs/relu_adam.yaml", {"train.epochs": 3})
    seeds = mlp_lab.sweep("configs/sweeps/batchnorm.yaml", {"train.epochs": 2})
    runs = mlp_lab.load_runs("runs/")
    print(mlp_lab.compare("runs/"))                 # what `mlp-lab compare runs/` prints
    mlp_lab.runs_frame(runs)                        # a pandas DataFrame, one row per run

Nothing is printed unless asked for (``progress=True``); user errors raise MlpLabError
with the one-line message the CLI would print. Importing ``mlp_lab`` imports none of this
(and no torch) until a name is used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from mlp_lab import runs as run_folders
from mlp_lab.keys import flatten
from mlp_lab.selection import DEFAULT_METRIC, selection

# As --set: {"optimizer.lr": 0.01}, ["optimizer.lr=0.01"], one "key=value" string, or None.
Overrides = Mapping[str, Any] | Sequence[str] | str | None

__all__ = ["Run", "train", "sweep", "load_runs", "compare", "comparison", "runs_frame", "groups_frame"]


@dataclass
class Run:
    """One run folder: its resolved config, its summary and its per-epoch metrics."""

    path: Path
    status: str
    config: dict[str, Any] | None
    summary: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short, for a notebook cell or a list of runs: the whole config and summary are
        # one attribute away, not a screenful each time a Run is shown.
        parts = [f"path={str(self.path)!r}", f"status={self.status!r}"]
        done, planned = self.summary.get("epochs_done"), self.summary.get("epochs_planned")
        if planned is not None:
            parts.append(f"epochs={done}/{planned}")
        final = self.final or {}
        parts += [f"{k}={final[k]:.4g}" for k in ("val_acc", "test_acc") if final.get(k) is not None]
        if self.problems:
            parts.append(f"problems={len(self.problems)}")
        return f"Run({', '.join(parts)})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def params(self) -> dict[str, Any]:
        """The config as dotted keys: {'optimizer.lr': 0.001, ...}."""
        return flatten(self.config) if self.config is not None else {}

    @property
    def final(self) -> dict[str, Any] | None:
        """The last finished epoch's metrics."""
        return self.metrics[-1] if self.metrics else None

    @property
    def best(self) -> dict[str, Any] | None:
        """The maximum of test accuracy over epochs and its epoch, as summary.json records it:
        chosen on test, so optimistic; ``selected`` is the epoch chosen on validation."""
        return self.summary.get("best")

    @property
    def selected(self) -> dict[str, Any] | None:
        """The epoch chosen on validation and the test accuracy there (``selected_epoch``,
        ``selected_by``, ``selected_test_acc``), or None without a validation split."""
        by = (self.summary.get("selected_by") or DEFAULT_METRIC) if self.summary else DEFAULT_METRIC
        chosen = selection(self.metrics, by)
        return chosen if chosen["selected_epoch"] is not None else None

    def frame(self) -> Any:
        """The per-epoch metrics as a pandas DataFrame indexed by epoch."""
        pd = _pandas()
        return pd.DataFrame(self.metrics).set_index("epoch") if self.metrics else pd.DataFrame()

    @classmethod
    def read(cls, path: str | Path) -> Run:
        rec = run_folders.load_run(Path(path))
        return cls(
            path=rec.path,
            status=rec.status,
            config=rec.config,
            summary=rec.summary or {},
            metrics=rec.metrics,
            problems=list(rec.problems),
        )


def _config(config: str | Path | Mapping[str, Any] | Any, overrides: Overrides) -> Any:
    """A validated config from a YAML file, a dict or an ExperimentConfig, with overrides."""
    from mlp_lab.config import config_from_dict, config_to_dict, load_config
    from mlp_lab.schema import ExperimentConfig

    items = _override_items(overrides)
    if isinstance(config, ExperimentConfig):
        return config_from_dict(config_to_dict(config), items)
    if isinstance(config, Mapping):
        return config_from_dict(dict(config), items, source="config")
    if not isinstance(config, (str, PathLike)):
        raise TypeError(f"config: a YAML file's path, a dict or an ExperimentConfig, not {type(config).__name__}")
    return load_config(Path(config), items)


def check(
    config: str | Path | Mapping[str, Any] | Any,
    overrides: Overrides = (),
    *,
    data_dir: str | Path | None = None,
    tiny: int = 20,
) -> Any:
    """``mlp-lab check``: the checklist before a long run, as a ``check_result.CheckResult``
    (``.checks``, ``.suggested_lr``, ``.lr_range``, ``.curve``, ``.to_dict()``)."""
    from mlp_lab.checklist import run_check

    return run_check(_config(config, overrides), Path(data_dir) if data_dir is not None else None, tiny=tiny)


def train(
    config: str | Path | Mapping[str, Any] | Any,
    overrides: Overrides = (),
    *,
    data_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
    diagnose: bool = False,
    progress: bool = False,
) -> Run:
    """Train one experiment, as ``mlp-lab train`` does, and return its run folder.

    ``config``: a YAML file, a dict (nested, as in a file), or an ExperimentConfig.
    ``overrides``: ``{"optimizer.lr": 0.01}``, ``["optimizer.lr=0.01"]`` or one such string, as ``--set``.
    A run that diverges or is interrupted still returns (see ``Run.status``).
    """
    from mlp_lab.launch import train_experiment

    cfg = _config(config, overrides)
    if diagnose:
        cfg.train.diagnostics = True
    result = train_experiment(
        cfg, Path(data_dir) if data_dir is not None else None, Path(runs_dir), show_progress=progress
    )
    return Run.read(result.run_dir)


def _override_items(overrides: Overrides) -> list[str]:
    """``--set`` items from a dict, a list of ``key=value`` strings, one such string, or None."""
    if overrides is None:
        return []
    if isinstance(overrides, str):  # one override, not a sequence of one-letter ones
        return [overrides]
    if isinstance(overrides, Mapping):
        import json

        # JSON is YAML: --set parses the value back to exactly this one.
        return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    return list(overrides)


def sweep(
    file: str | Path,
    overrides: Overrides = (),
    *,
    jobs: int | None = None,
    threads: int | None = None,
    backend: str = "local",
    address: str | None = None,
    runs_dir: str | Path = "runs",
    data_dir: str | Path | None = None,
    yes: bool = False,
) -> list[Run]:
    """Run a sweep file, as ``mlp-lab sweep`` does (quietly), and return its runs in the
    sweep's order. ``overrides`` apply to every run, as ``--set``. ``backend="ray"`` runs
    them as Ray tasks: on the cluster at ``address``, the one this notebook joined with
    ``ray.init``, or a local Ray started for the sweep. A sweep that is stopped (Ctrl-C)
    returns the runs so far; ``mlp-lab resume FOLDER`` goes on."""
    from mlp_lab import sweeps

    data = Path(data_dir) if data_dir is not None else None
    jobs, threads = sweeps.default_workers(jobs, threads, backend)  # an unknown backend: before anything is written
    plan = sweeps.load_sweep(file, _override_items(overrides), yes=yes)
    folder = sweeps.start_sweep(plan, Path(runs_dir), data).folder
    sweeps.run_sweep(folder, jobs=jobs, threads=threads, data_dir=data, backend=backend, address=address)
    entries = sweeps.load_manifest(folder).runs
    return [Run.read(folder / e["folder"]) for e in entries if e["folder"] and (folder / e["folder"]).is_dir()]


def load_runs(*paths: str | Path) -> list[Run]:
    """Run folders, or folders holding them (default: runs/), in the order compare reads them.
    A path that holds no run (a typo, a folder of something else) is a UserWarning, as compare
    warns of it, so that an empty list is never the only sign of it."""
    folders, problems = run_folders.discover_runs([Path(p) for p in paths] or [Path("runs")])
    for problem in problems:
        warnings.warn(problem, UserWarning, stacklevel=2)
    return [Run.read(f) for f in folders]


def comparison(*paths: str | Path, **options: Any) -> Any:
    """The ``Comparison`` of ``compare.build_comparison`` (options: sort, top, filters,
    all_params, reverse, group, group_by, baseline)."""
    from mlp_lab.results import build_comparison

    return build_comparison(list(paths) or [Path("runs")], **options)


def compare(*paths: str | Path, format: str = "table", width: int | None = None, **options: Any) -> str:
    """What ``mlp-lab compare PATHS --format FORMAT`` prints, as a string."""
    from mlp_lab.results import render, resolve_format

    return render(comparison(*paths, **options), resolve_format(format, None), width=width)


def runs_frame(runs: Sequence[Run]) -> Any:
    """One row per run: name, status, every config field (dotted), the final metrics, the
    epoch chosen on validation with its test accuracy, and the test maximum (chosen on test)."""
    pd = _pandas()
    rows = []
    for run in runs:
        final = {f"final_{k}": v for k, v in (run.final or {}).items() if k != "epoch"}
        best = run.best or {}
        chosen = run.selected or {}
        rows.append(
            {
                "run": run.name,
                "status": run.status,
                **run.params,
                **final,
                "selected_epoch": chosen.get("selected_epoch"),
                "selected_test_acc": chosen.get("selected_test_acc"),
                "best_test_acc": best.get("test_acc"),
                "best_epoch": best.get("epoch"),
                "epochs_done": len(run.metrics),
                "duration_s": run.summary.get("duration_s"),
            }
        )
    return pd.DataFrame(rows)


def groups_frame(comp: Any) -> Any:
    """One row per row of a Comparison (a seed group, or a run): the columns of
    ``compare --format csv``, values raw (accuracies as fractions)."""
    pd = _pandas()
    return pd.DataFrame([{c: _nan(r.get(c)) for c in comp.columns} for r in comp.records()])


def _nan(v: Any) -> Any:
    return math.nan if v is None else v


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        from mlp_lab.errors import MlpLabError

        raise MlpLabError("DataFrames need pandas, which is not installed: pip install pandas") from None
    return pd
