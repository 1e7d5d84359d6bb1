"""Starting a run the way ``mlp-lab train`` does: the config resolved (or read back from
the run being resumed), everything that can be wrong with the input checked before a run
folder exists (device, memory, data, checkpoint), the folder made, progress and TensorBoard
shown while ``training.run_experiment`` trains, the result printed.

The training loop itself is ``training.py``: this is what stands around it for a command
line, a notebook (``api.train``) or a sweep's worker.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mlp_lab import checkpoint, runs
from mlp_lab.config import config_from_dict, load_config
from mlp_lab.data import load_data, resolve_data_dir
from mlp_lab.devices import resolve_device
from mlp_lab.errors import ConfigError, MlpLabError, RunError
from mlp_lab.memory import check_fits
from mlp_lab.schema import ExperimentConfig
from mlp_lab.training import RunResult, run_experiment


def prepare(
    config_path: Path | None,
    overrides: list[str],
    resume: Path | None,
    diagnose: bool,
) -> tuple[ExperimentConfig, Path | None]:
    """Resolve the config (from a file, or from the run being resumed)."""
    if resume is not None:
        if config_path is not None or overrides:
            raise ConfigError("--resume continues a run exactly as configured; it takes no --config or --set")
        raw = runs.load_config_dict(resume)
        cfg = config_from_dict(raw, source=str(Path(resume) / runs.CONFIG))
        record = runs.load_run(Path(resume))
        if record.status == "running":
            raise RunError(
                f"{resume} is still running (process {(record.summary or {}).get('pid')}); stop it first "
                "(Ctrl-C or kill PID), then resume"
            )
        if record.status == "completed":
            raise RunError(f"{resume} already completed its {cfg.train.epochs} epochs; nothing to resume")
        if record.status == "diverged":
            raise RunError(
                f"{resume} diverged; resuming would repeat the same steps and diverge again: change the config "
                "(see the advice in its summary.json) and start a new run"
            )
        return cfg, Path(resume) / runs.CHECKPOINT
    if config_path is None:
        raise ConfigError(
            "no experiment given: pass --config FILE.yaml (see configs/); to continue a run: mlp-lab resume RUN_FOLDER"
        )
    cfg = load_config(config_path, overrides)
    if diagnose:
        cfg.train.diagnostics = True
    return cfg, None


def train_experiment(
    cfg: ExperimentConfig,
    data_dir: Path | None = None,
    runs_dir: Path = Path("runs"),
    resume: Path | None = None,
    show_progress: bool = False,
    run_dir: Path | None = None,
    tensorboard: Path | None = None,
) -> RunResult:
    """Train a resolved config into a new run folder under ``runs_dir`` (or into the empty
    folder ``run_dir``, or continue the run folder ``resume``), the way ``mlp-lab train``
    does, and return how it ended.

    Everything that can be wrong with the input (device, data, checkpoint) raises an
    MlpLabError before a run folder exists. ``tensorboard``: also write TensorBoard events
    there as each epoch ends (export.LiveTensorBoard).
    """
    from mlp_lab.console import TrainingProgress

    live = None
    if tensorboard is not None:  # (export, and the comparison code it builds on, only for runs that write events)
        from mlp_lab.export import LiveTensorBoard

        live = LiveTensorBoard(tensorboard)  # the extra is missing: before anything

    ckpt_path = Path(resume) / runs.CHECKPOINT if resume is not None else None
    if ckpt_path is not None and not ckpt_path.exists():
        checkpoint.load(ckpt_path)  # raises the explanatory RunError
    device = resolve_device(cfg.train.device)
    check_fits(cfg, device)
    data = load_data(cfg.data, resolve_data_dir(data_dir, cfg.data), device, seed=cfg.train.seed)
    if resume is not None:
        run_dir = Path(resume)
    elif run_dir is None:
        run_dir = runs.create_run_dir(runs_dir, cfg.name)
    try:
        with TrainingProgress(enabled=show_progress, run_name=run_dir.name) as progress:
            if live is None:
                return run_experiment(cfg, run_dir, data, device, progress=progress, resume_from=ckpt_path)
            teed = _Teed(progress, live, run_dir, cfg)
            result = run_experiment(cfg, run_dir, data, device, progress=teed, resume_from=ckpt_path)
            teed.end(result)
            return result
    except BaseException as e:
        # run_experiment raises only while setting up (model, optimizer, checkpoint),
        # before its first summary: a new folder holding nothing is removed again.
        if resume is None and not (run_dir / runs.SUMMARY).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # (a folder handed in empty is removed too)
        if isinstance(e, MlpLabError | KeyboardInterrupt):
            raise
        if isinstance(e, MemoryError | torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(e):
            raise ConfigError(
                f"model.hidden {cfg.model.hidden}: the model does not fit in {device} memory "
                f"({e.__class__.__name__}); use fewer or smaller hidden layers"
            ) from None
        raise


class _Teed:
    """The progress display, and the TensorBoard events of each finished epoch."""

    def __init__(self, progress: Any, live: Any, run_dir: Path, cfg: ExperimentConfig) -> None:
        self.progress, self.live, self.run_dir = progress, live, run_dir
        self.config = {"name": cfg.name, "train": {"seed": cfg.train.seed}}

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.progress.start_epoch(epoch, epochs)

    def step(self, done: int, total: int) -> None:
        self.progress.step(done, total)

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.progress.end_epoch(record)
        self.live.epoch(self.run_dir, self.config, record)

    def warn(self, message: str) -> None:
        self.progress.warn(message)

    def end(self, result: RunResult) -> None:
        """The run's ending and final metrics, once it has written them."""
        from mlp_lab.results.rows import read_row

        row = read_row(result.run_dir)
        self.live.end(result.run_dir, self.config, result.status, row.metrics if row is not None else {}, varies={})


def train_from_cli(
    config_path: Path | None,
    overrides: list[str],
    data_dir: Path | None,
    runs_dir: Path,
    resume: Path | None = None,
    diagnose: bool = False,
    quiet: bool = False,
    tensorboard: Path | None = None,
) -> int:
    from mlp_lab.console import print_result

    cfg, _ = prepare(config_path, overrides, resume, diagnose)
    result = train_experiment(
        cfg, data_dir, runs_dir, resume, show_progress=not quiet and sys.stderr.isatty(), tensorboard=tensorboard
    )
    print_result(result, quiet=quiet)
    return result.exit_code
