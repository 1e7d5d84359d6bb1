"""mlp-lab compare, show, report and export: finished runs read, side by side or elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from mlp_lab.cli.options import (
    Command,
    Group,
    flag,
    print_renderables,
    stdout_console,
    user_errors,
)


def _runs_argument() -> Any:
    """PATHS...: what compare, report and export read."""
    return typer.Argument(
        None, help="Run folders, or folders holding run folders (default: runs/).", show_default=False
    )


@user_errors
def compare(
    paths: List[Path] = _runs_argument(),
    sort: Optional[str] = typer.Option(
        None,
        "--sort",
        "-s",
        help="Metric or config field to sort by; accuracies best first, losses and time lowest first (default: val_acc when the runs have a validation split, else test_acc; a search's own metric for search folders).",
        show_default=False,
    ),
    reverse: bool = flag("--reverse", "-r", help="Reverse the sort order."),
    top: Optional[int] = typer.Option(
        None, "--top", "-n", help="Keep only the first N rows (runs or seed groups) after sorting."
    ),
    filter_: List[str] = typer.Option(
        [],
        "--filter",
        "-f",
        help="Keep runs where key=value (or !=, >, <, >=, <=); values read as YAML, so optimizer.lr=1e-3 matches 0.001; a metric filter keeps seed groups by their mean. Repeatable.",
    ),
    all_params: bool = flag("--all-params", "-a", help="Show every config field, not only those that differ."),
    format_: Optional[str] = typer.Option(
        None, "--format", help="table, json, csv or markdown (default: from --output's suffix, else table)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file (atomically) instead of printing."
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Also draw the compared runs' learning curves to FILE.png."
    ),
    no_group: bool = flag("--no-group", help="One row per run: don't group runs that differ only in their seed."),
    group_by: Optional[str] = typer.Option(
        None,
        "--group-by",
        help="Group runs by these fields only (KEY[,KEY]); the fields that still vary in a group are listed for it.",
    ),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="The group every other is tested against (key=value[,key=value]); default: the best."
    ),
) -> None:
    """Compare runs: the config fields that differ, validation and test accuracy, losses, time.

    Runs that differ only in their seed are one row: mean ± std over the
    seeds, a 95% interval, and each group's difference to the baseline with
    a p-value.
    Example: mlp-lab compare runs/ --filter data.dataset=mnist --sort val_acc
    """
    from mlp_lab import plots
    from mlp_lab import results as cmp

    fmt = cmp.resolve_format(format_, output)
    if plot is not None:
        plots.check_plot_path(plot)
    comp = cmp.build_comparison(
        paths or [Path("runs")],
        sort=sort or _default_sort(paths),
        top=top,
        filters=filter_,
        all_params=all_params,
        reverse=reverse,
        group=not no_group,
        group_by=cmp.split_keys(group_by),
        baseline=baseline,
    )
    for line in cmp.warning_lines(comp.warnings):
        typer.echo(f"warning: {line}", err=True)
    if output is not None:
        cmp.write_output(output, cmp.render(comp, fmt))
        typer.echo(f"wrote {len(comp.rows)} run{'s' if len(comp.rows) != 1 else ''} to {output}", err=True)
    elif fmt == "table":
        console = stdout_console()
        print_renderables(console, cmp.table_renderable(comp, console.width))
    else:
        typer.echo(cmp.render(comp, fmt), nl=False)
    if plot is not None:
        best = comp.rows.index(comp.best) if comp.best is not None else None
        runs = [cmp.runs_of(r) for r in comp.rows]  # a seed group's runs draw as its mean and ±1 std band
        plots.plot_comparison([[r.history for r in group] for group in runs], cmp.plot_labels(comp), plot, best=best)
        typer.echo(f"wrote plot to {plot}", err=True)
        _plot_diagnostics([[r.path for r in group] for group in runs], cmp.plot_labels(comp), plot)
        _plot_searches(paths or [Path("runs")], plot)


@user_errors
def report(
    paths: List[Path] = _runs_argument(),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="The HTML file to write."),
    title: Optional[str] = typer.Option(None, "--title", help="The page's title (default: the paths compared)."),
    sort: Optional[str] = typer.Option(
        None,
        "--sort",
        "-s",
        help="Metric or config field to sort by, as compare's (default: val_acc with a validation split, else test_acc; a search's own metric for search folders).",
        show_default=False,
    ),
    filter_: List[str] = typer.Option(
        [], "--filter", "-f", help="Keep runs where key=value (or !=, >, <, >=, <=), as compare's. Repeatable."
    ),
    no_group: bool = flag("--no-group", help="One row per run: don't group runs that differ only in their seed."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Group runs by these fields only (KEY[,KEY])."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="The group every other is tested against (key=value[,key=value])."
    ),
) -> None:
    """One self-contained HTML page of a comparison: table, verdict, curves, diagnostics, configs, warnings.

    No network, no scripts: styles and figures are inside the file, so it
    can be mailed or put on a course page.
    Example: mlp-lab report runs/lecture -o lecture.html
    """
    from mlp_lab.report import write_report
    from mlp_lab.results import split_keys

    paths = paths or [Path("runs")]
    out = write_report(
        paths,
        output,
        title=title or f"mlp-lab: {', '.join(str(p) for p in paths)}",
        sort=sort or _default_sort(paths),
        filters=filter_,
        group=not no_group,
        group_by=split_keys(group_by),
        baseline=baseline,
    )
    typer.echo(f"wrote {out}", err=True)


# `mlp-lab export FORMAT`: a group of its own, added to the app beside the commands.
export_app = typer.Typer(cls=Group, no_args_is_help=True, help="Write runs in other tools' formats.")


@export_app.command("tensorboard", cls=Command)
@user_errors
def export_tensorboard(
    paths: List[Path] = _runs_argument(),
    logdir: Path = typer.Option(..., "--logdir", help="TensorBoard's log folder to write into.", show_default=False),
    filter_: List[str] = typer.Option(
        [], "--filter", "-f", help="Keep runs where key=value, as compare's. Repeatable."
    ),
) -> None:
    """Per-epoch scalars, diagnostics per layer and hyper-parameters (HParams) as TensorBoard event files.

    The runs of one seed group are named <group>/seed<N>, so TensorBoard's
    run filter selects a group. Needs the tensorboard extra
    (pip install "mlp-lab\\[tensorboard]").
    Then: tensorboard --logdir DIR
    """
    from mlp_lab.export import export_tensorboard as export

    written = export(paths or [Path("runs")], logdir, filters=filter_)
    typer.echo(
        f"wrote {len(written)} run{'s' if len(written) != 1 else ''} to {logdir} (tensorboard --logdir {logdir})",
        err=True,
    )


@export_app.command("mlflow", cls=Command)
@user_errors
def export_mlflow(
    paths: List[Path] = _runs_argument(),
    tracking_uri: str = typer.Option(
        "sqlite:///mlflow.db", "--tracking-uri", help="The MLflow tracking store (a database URI or a server's URL)."
    ),
    experiment: str = typer.Option("mlp-lab", "--experiment", help="The MLflow experiment the runs go into."),
) -> None:
    """Each run as an MLflow run: config as params, per-epoch metrics, status, tags, config and summary.

    Exporting again updates the same MLflow runs instead of adding copies.
    Needs the mlflow extra (pip install "mlp-lab\\[mlflow]").
    Then: mlflow ui --backend-store-uri URI
    """
    from mlp_lab.export_mlflow import export_mlflow as export

    done = export(paths or [Path("runs")], tracking_uri, experiment)
    new = sum(e.new for e in done)
    typer.echo(
        f"exported {len(done)} run{'s' if len(done) != 1 else ''} to {tracking_uri}, experiment {experiment} "
        f"({new} new, {len(done) - new} updated); see them with: mlflow ui --backend-store-uri {tracking_uri}",
        err=True,
    )


@user_errors
def show(
    run: Path = typer.Argument(..., help="A run folder.", show_default=False),
    all_: bool = flag("--all", help="Show every config field, not only those that differ from the defaults."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw this run's loss and accuracy curves to FILE.png."),
) -> None:
    """Show one run: its config, per-epoch metrics, summary and files."""
    from mlp_lab import plots
    from mlp_lab import results as cmp

    if plot is not None:
        plots.check_plot_path(plot)
    details = cmp.describe_run(run, all_params=all_)
    if details.record.problems:
        typer.echo(f"warning: {run}: {', '.join(details.record.problems)}; showing what could be read", err=True)
    console = stdout_console()
    print_renderables(console, *cmp.show_renderables(details, all_params=all_))
    if plot is not None:
        plots.plot_run(details.record.metrics, plot, title=details.record.name)
        typer.echo(f"wrote plot to {plot}", err=True)
        _plot_diagnostics([[details.record.path]], [details.record.name], plot)


def _default_sort(paths: Optional[List[Path]]) -> Optional[str]:
    from mlp_lab.runs import compared_on

    return compared_on(list(paths or []))


def _plot_searches(paths: List[Path], plot: Path) -> None:
    """Search folders among the compared: their trials' scatter, FILE.search.png (one each)."""
    from mlp_lab.runs import search_folders
    from mlp_lab.sweeps.search_runner import draw_search

    folders = search_folders(paths)
    for folder in folders:
        target = plot.with_name(f"{plot.stem}.search{'-' + folder.name if len(folders) > 1 else ''}{plot.suffix}")
        typer.echo(f"wrote search plot to {draw_search(folder, target)}", err=True)


def _plot_diagnostics(run_dirs: List[List[Path]], labels: List[str], plot: Path) -> None:
    """Runs trained with --diagnose: their per-layer figure beside the curves, FILE.diagnostics.png."""
    from mlp_lab.diagnostic_plots import plot_run_diagnostics

    written = plot_run_diagnostics(run_dirs, labels, plot)
    if written is not None:
        typer.echo(f"wrote diagnostics plot to {written}", err=True)
