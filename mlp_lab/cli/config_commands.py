"""mlp-lab check, inspect, schema and configs: a config looked at before it trains."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mlp_lab.cli.options import (
    config_option,
    data_dir_option,
    flag,
    located,
    print_renderables,
    set_option,
    stdout_console,
    user_errors,
)
from mlp_lab.errors import ConfigError, lookup


@user_errors
def check(
    config: Path = config_option("YAML experiment file (or a shipped config's name): the config to check.", True),
    set_: List[str] = set_option("Override a field, as train's --set (repeatable)."),
    data_dir: Optional[Path] = data_dir_option(),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the learning-rate range test to FILE.png."),
    format_: str = typer.Option("text", "--format", help="text or json."),
    tiny: int = typer.Option(20, "--tiny", help="Training images the network must be able to overfit."),
) -> None:
    """Before a long run: loss at init, regularisation, overfitting a tiny set, a learning-rate range test, the update ratio.

    Each check passes, warns or fails with the number measured, the one
    expected and what to change. Exit 0 when nothing fails, 1 when a check
    fails. Writes nothing but --plot.
    """
    import json

    from mlp_lab.check_result import check_lines
    from mlp_lab.checklist import run_check
    from mlp_lab.config import load_config
    from mlp_lab.plots import check_plot_path, plot_lr_range

    lookup({"text": None, "json": None}, "--format", format_, ConfigError)
    if plot is not None:
        check_plot_path(plot)
    result = run_check(load_config(located(config), set_), data_dir=data_dir, tiny=tiny)
    typer.echo(json.dumps(result.to_dict(), indent=2) if format_ == "json" else "\n".join(check_lines(result)))
    if plot is not None and result.curve.get("lr"):
        plot_lr_range(result, plot)
        typer.echo(f"wrote plot to {plot}", err=True)
    raise typer.Exit(result.exit_code)


@user_errors
def schema() -> None:
    """Print the config's JSON schema (every key, its default and what it allows)."""
    import json

    from mlp_lab.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@user_errors
def inspect(
    config: Path = config_option("YAML experiment file (or a shipped config's name): the network to build.", True),
    set_: List[str] = set_option("Override a field: --set model.hidden=[500,500,500] (repeatable)."),
    data_dir: Optional[Path] = data_dir_option(),
    batch: int = typer.Option(1000, "--batch", help="Samples pushed through the network."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Draw a histogram of each layer's activations to FILE.png."
    ),
    synthetic_input: bool = flag(
        "--synthetic-input", help="Standard-normal inputs instead of the data set (no data needed)."
    ),
) -> None:
    """No training: one batch through the freshly initialised network, forward and backward, per-layer statistics."""
    from mlp_lab.config import load_config
    from mlp_lab.diagnostic_plots import plot_activation_histograms
    from mlp_lab.inspection import inspect_network, inspection_table
    from mlp_lab.plots import check_plot_path

    if plot is not None:
        check_plot_path(plot)
    cfg = load_config(located(config), set_)
    result = inspect_network(cfg, data_dir=data_dir, batch=batch, synthetic=synthetic_input)
    console = stdout_console()
    print_renderables(
        console, inspection_table(result, title=f"{cfg.name}: {len(result.layers)} hidden layers at initialisation")
    )
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    if plot is not None:
        plot_activation_histograms(result, plot, title=f"{cfg.name}: {cfg.model.activation}, init {cfg.model.init}")
        typer.echo(f"wrote plot to {plot}", err=True)


@user_errors
def configs(
    copy: Optional[str] = typer.Option(
        None,
        "--copy",
        help="Copy this shipped config, sweep file or folder (lecture) out to start your own.",
        show_default=False,
    ),
    to: Optional[Path] = typer.Option(
        None, "--to", help="Where --copy puts it: a folder (default: this one), or a new name.", show_default=False
    ),
) -> None:
    """The configs and sweep files that ship with mlp-lab, each with what it is for.

    Any of them works by name where a file is asked for.
    Start your own from one.
    Examples: mlp-lab train --config relu_adam
    mlp-lab sweep batchnorm
    mlp-lab configs --copy relu_adam --to my.yaml
    mlp-lab configs --copy lecture --to my-lecture
    """
    from mlp_lab.shipped import copy_out, list_shipped, shipped_dir

    if copy is not None:
        copied = copy_out(copy, to if to is not None else Path("."))
        typer.echo(f"wrote {copied.path}")
        for note in copied.notes:
            typer.echo(f"note: {note}", err=True)
        return
    if to is not None:
        raise ConfigError(f"--to {to}: says where --copy puts a shipped file; give --copy NAME with it")
    entries = list_shipped()
    width = max((len(e.name) for e in entries), default=0)
    for kind, title in (("config", "train configs"), ("sweep", "sweep files")):
        typer.echo(f"{title} (in {shipped_dir()}):")
        for e in (e for e in entries if e.kind == kind):
            typer.echo(f"  {e.name:<{width}}  {e.description}".rstrip())
