"""mlp-lab train and mlp-lab resume: one run, or continuing whatever a folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlp_lab.cli.options import (
    address_option,
    config_option,
    data_dir_option,
    flag,
    jobs_option,
    located,
    set_option,
    tensorboard_option,
    threads_option,
    user_errors,
)
from mlp_lab.errors import MlpLabError


@user_errors
def train(
    config: Optional[Path] = config_option("YAML experiment file, or a shipped config's name (mlp-lab configs)."),
    set_: List[str] = set_option("Override a field: --set optimizer.lr=0.01 (repeatable)."),
    data_dir: Optional[Path] = data_dir_option(),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are written."),
    # The older spelling of `mlp-lab resume RUN`: it keeps working, out of --help's way.
    resume: Optional[Path] = typer.Option(None, "--resume", hidden=True),
    diagnose: bool = flag("--diagnose", help="Record per-layer diagnostics (same as train.diagnostics: true)."),
    quiet: bool = flag("--quiet", "-q", help="No progress bar."),
    tensorboard: Optional[Path] = tensorboard_option("each epoch ends"),
) -> None:
    """Train one experiment and write its run folder (mlp-lab resume RUN continues an interrupted one)."""
    _train(located(config), set_, data_dir, runs_dir, resume, diagnose, quiet, tensorboard)


def _train(
    config: Optional[Path],
    overrides: List[str],
    data_dir: Optional[Path],
    runs_dir: Path,
    resume: Optional[Path],
    diagnose: bool,
    quiet: bool,
    tensorboard: Optional[Path],
) -> None:
    """Train (or resume) one run and exit with its code."""
    try:
        from mlp_lab.launch import train_from_cli

        code = train_from_cli(config, overrides, data_dir, runs_dir, resume, diagnose, quiet, tensorboard)
    except KeyboardInterrupt:
        # Ctrl-C before training started (importing torch, loading data); once it has,
        # the run itself handles Ctrl-C and ends with status interrupted.
        typer.echo("interrupted before training started", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


@user_errors
def resume(
    folder: Path = typer.Argument(
        ..., help="A run folder (mlp-lab train) or a sweep folder (sweep, refine, confirm).", show_default=False
    ),
    jobs: Optional[int] = jobs_option(),
    threads: Optional[int] = threads_option(),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="A sweep's backend (default: the one it ran on).", show_default=False
    ),
    address: Optional[str] = address_option(),
    data_dir: Optional[Path] = data_dir_option(),
    quiet: bool = flag("--quiet", "-q", help="No progress bar or live view."),
    tensorboard: Optional[Path] = tensorboard_option("each epoch ends"),
) -> None:
    """Continue what was stopped: a run from its last checkpoint, or a sweep's runs that did not end.

    A run continues exactly as configured and ends with the metrics of a run
    never stopped; a sweep runs exactly the runs that did not end, with the
    settings it was started with (its jobs, threads, backend, data) unless
    told otherwise. Runs that completed or diverged are never trained again.
    Examples: mlp-lab resume runs/relu_adam-20261204-120000-a1b2c3
    mlp-lab resume runs/lecture-20261204-120000-a1b2c3 --jobs 2
    """
    from mlp_lab.runs import folder_kind

    if folder_kind(folder) == "sweep":
        from mlp_lab.sweeps.console import resume_from_cli

        raise typer.Exit(resume_from_cli(folder, jobs, threads, backend, address, data_dir, quiet, tensorboard))
    given = {"--jobs": jobs, "--threads": threads, "--backend": backend, "--address": address}
    for option, value in given.items():
        if value is not None:
            raise MlpLabError(
                f"{option}: a sweep's option; {folder} is a run folder (it takes --data-dir, --quiet, --tensorboard)"
            )
    _train(None, [], data_dir, Path("runs"), folder, False, quiet, tensorboard)
