"""The command line. Each command parses, calls one library function, prints.

Nothing here imports torch at module level: ``mlp-lab --help`` and ``mlp-lab compare``
must start fast, so heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from mlp_lab.errors import MlpLabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mlp-lab: train MLPs from YAML experiments and compare what each choice does.",
)


def _user_errors(fn: Callable) -> Callable:
    """A user's mistake is one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MlpLabError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None

    return wrapper


@app.command()
@_user_errors
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML experiment file."),
    set_: List[str] = typer.Option([], "--set", help="Override a field: --set optimizer.lr=0.01 (repeatable)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data directory (else $MLP_LAB_DATA, data.data_dir, ./data)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are written."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its last checkpoint."),
    diagnose: bool = typer.Option(False, "--diagnose", help="Record per-layer diagnostics (same as train.diagnostics: true)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train one experiment and write its run folder."""
    from mlp_lab.train import train_from_cli

    code = train_from_cli(
        config_path=config, overrides=set_, data_dir=data_dir, runs_dir=runs_dir,
        resume=resume, diagnose=diagnose, quiet=quiet,
    )
    raise typer.Exit(code)


@app.command()
@_user_errors
def schema() -> None:
    """Print the config's JSON schema (every key, its default and what it allows)."""
    import json

    from mlp_lab.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
