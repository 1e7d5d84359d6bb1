"""The command line. Each command parses, calls one library function, prints.

Nothing here imports torch at module level: ``mlp-lab --help`` and ``mlp-lab compare``
must start fast, so heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, List, Optional, overload

import typer
from typer.core import TyperCommand, TyperGroup

from mlp_lab.errors import MlpLabError
from mlp_lab.process_exit import leave


class _PlainFlags:
    """Lists on/off options (ours, --help, --install-completion) without Typer's '<bool>'
    type column: a flag takes no value, so a type beside it only misleads."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_PlainFlags, TyperCommand):
    pass


class _Group(_PlainFlags, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group,
    add_completion=True,  # --install-completion: config names for --config, key paths for --set
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mlp-lab: train MLPs from YAML experiments and compare what each choice does.",
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, help="Print mlp-lab's version and exit."),
) -> None:
    """mlp-lab: train MLPs from YAML experiments and compare what each choice does."""
    # A flag read here rather than an option callback: typer 0.12 (the floor) handed such a
    # callback something else than the flag's value, and every command printed the version.
    if version:
        from mlp_lab import __version__

        typer.echo(f"mlp-lab {__version__}")
        raise typer.Exit()


def _complete_config(incomplete: str) -> List[str]:
    """--config: YAML files here, then the shipped configs by name."""
    from mlp_lab.shipped import list_shipped

    here = [str(p) for p in sorted(Path(".").glob(f"{incomplete}*")) if p.suffix in (".yaml", ".yml") or p.is_dir()]
    return here + [s.name for s in list_shipped() if s.name.startswith(incomplete)]


def _complete_sweep(incomplete: str) -> List[str]:
    from mlp_lab.shipped import list_shipped

    here = [str(p) for p in sorted(Path(".").glob(f"{incomplete}*")) if p.suffix in (".yaml", ".yml") or p.is_dir()]
    names = [n for s in list_shipped() if s.kind == "sweep" for n in (s.name, s.name.removeprefix("sweeps/"))]
    return here + sorted({n for n in names if n.startswith(incomplete)})


def _complete_set(incomplete: str) -> List[str]:
    """--set: every key path of the config (optimizer and scheduler fields of every variant), as 'key='."""
    from mlp_lab.config import settable_keys

    return [f"{k}=" for k in settable_keys() if k.startswith(incomplete)]


def _flag(*decls: str, help: str) -> Any:
    """An on/off option, off unless given."""
    return typer.Option(False, *decls, help=help)


def _data_dir_option() -> Any:
    """--data-dir, as every command that reads data takes it."""
    return typer.Option(None, "--data-dir", help="Data directory (else $MLP_LAB_DATA, data.data_dir, ./data).")


# The options of how a sweep's runs run: sweep, refine and resume take them alike.


def _jobs_option() -> Any:
    return typer.Option(
        None,
        "--jobs",
        "-j",
        help="Runs at once (local: a process each; default: one per core, at most 8. ray: default no cap).",
        show_default=False,
    )


def _threads_option() -> Any:
    return typer.Option(
        None,
        "--threads",
        help="torch threads per run (local default: the cores shared among the jobs; ray: 1, its num_cpus).",
        show_default=False,
    )


def _backend_option() -> Any:
    return typer.Option(
        None,
        "--backend",
        help="local (a process per run, the default) or ray (a Ray task per run; needs the ray extra, see the README).",
        show_default=False,
    )


def _address_option() -> Any:
    return typer.Option(
        None,
        "--address",
        help="With --backend ray: the cluster (HOST:PORT, ray://HOST:PORT; default $RAY_ADDRESS, else a local Ray for this sweep).",
        show_default=False,
    )


def _tensorboard_option(each: str) -> Any:
    return typer.Option(
        None,
        "--tensorboard",
        help=f"Also write TensorBoard events to DIR as {each} (tensorboard --logdir DIR).",
        show_default=False,
    )


@overload
def _located(arg: Path, kind: str = ...) -> Path: ...
@overload
def _located(arg: None, kind: str = ...) -> None: ...
def _located(arg: Optional[Path], kind: str = "config") -> Optional[Path]:
    """The file ``--config`` (or a sweep file) names: the path itself, else the shipped one
    of that name, said on stderr."""
    if arg is None:
        return None
    from mlp_lab.shipped import locate

    path, entry = locate(arg, kind)
    if entry is not None:
        typer.echo(f"using the shipped {kind} {entry.name} ({path})", err=True)
    return path


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


@app.command(cls=_Command)
@_user_errors
def train(
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML experiment file, or a shipped config's name (mlp-lab configs).",
        autocompletion=_complete_config,
    ),
    set_: List[str] = typer.Option(
        [], "--set", help="Override a field: --set optimizer.lr=0.01 (repeatable).", autocompletion=_complete_set
    ),
    data_dir: Optional[Path] = _data_dir_option(),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are written."),
    # The older spelling of `mlp-lab resume RUN`: it keeps working, out of --help's way.
    resume: Optional[Path] = typer.Option(None, "--resume", hidden=True),
    diagnose: bool = _flag("--diagnose", help="Record per-layer diagnostics (same as train.diagnostics: true)."),
    quiet: bool = _flag("--quiet", "-q", help="No progress bar."),
    tensorboard: Optional[Path] = _tensorboard_option("each epoch ends"),
) -> None:
    """Train one experiment and write its run folder (mlp-lab resume RUN continues an interrupted one)."""
    _train(_located(config), set_, data_dir, runs_dir, resume, diagnose, quiet, tensorboard)


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
        from mlp_lab.training import train_from_cli

        code = train_from_cli(config, overrides, data_dir, runs_dir, resume, diagnose, quiet, tensorboard)
    except KeyboardInterrupt:
        # Ctrl-C before training started (importing torch, loading data); once it has,
        # the run itself handles Ctrl-C and ends with status interrupted.
        typer.echo("interrupted before training started", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


@app.command(cls=_Command)
@_user_errors
def resume(
    folder: Path = typer.Argument(
        ..., help="A run folder (mlp-lab train) or a sweep folder (sweep, refine, confirm).", show_default=False
    ),
    jobs: Optional[int] = _jobs_option(),
    threads: Optional[int] = _threads_option(),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="A sweep's backend (default: the one it ran on).", show_default=False
    ),
    address: Optional[str] = _address_option(),
    data_dir: Optional[Path] = _data_dir_option(),
    quiet: bool = _flag("--quiet", "-q", help="No progress bar or live view."),
    tensorboard: Optional[Path] = _tensorboard_option("each epoch ends"),
) -> None:
    """Continue what was stopped: a run from its last checkpoint, or a sweep's runs that did not end.

    A run continues exactly as configured and ends with the metrics of a run never
    stopped; a sweep runs exactly the runs that did not end, with the settings it was
    started with (its jobs, threads, backend, data) unless told otherwise. Runs that
    completed or diverged are never trained again.
    Examples: mlp-lab resume runs/relu_adam-20261204-120000-a1b2c3;
    mlp-lab resume runs/lecture-20261204-120000-a1b2c3 --jobs 2
    """
    from mlp_lab.runs import folder_kind

    if folder_kind(folder) == "sweep":
        from mlp_lab.sweeps.console import resume_from_cli

        raise typer.Exit(resume_from_cli(folder, jobs, threads, backend, address, data_dir, quiet, tensorboard))
    given = {"--jobs": jobs, "--threads": threads, "--backend": backend, "--address": address}
    for flag, value in given.items():
        if value is not None:
            raise MlpLabError(
                f"{flag}: a sweep's option; {folder} is a run folder (it takes --data-dir, --quiet, --tensorboard)"
            )
    _train(None, [], data_dir, Path("runs"), folder, False, quiet, tensorboard)


@app.command(cls=_Command)
@_user_errors
def sweep(
    file: Optional[Path] = typer.Argument(
        None,
        help="The sweep file (YAML): base or configs, set, grid, cases, seeds; or a shipped one's name.",
        show_default=False,
        autocompletion=_complete_sweep,
    ),
    set_: List[str] = typer.Option(
        [],
        "--set",
        help="Override a field in every run: --set train.epochs=5 (repeatable).",
        autocompletion=_complete_set,
    ),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        help="Shorthand with no sweep file: this train config as the base, with --grid or --search, and --seeds.",
        show_default=False,
    ),
    grid: List[str] = typer.Option(
        [],
        "--grid",
        help="With --config: key.path=value1,value2 (repeatable; the grid is their product).",
        show_default=False,
    ),
    search: List[str] = typer.Option(
        [],
        "--search",
        help="With --config: key.path=log_uniform:1e-4:1e-1 (uniform, int, log_int) or key.path=choice:a,b "
        "(repeatable): a search instead of a grid, with --trials.",
        show_default=False,
    ),
    method: Optional[str] = typer.Option(
        None, "--method", help="With --search: random (the default) or tpe.", show_default=False
    ),
    prune: Optional[str] = typer.Option(
        None,
        "--prune",
        help="With --search: none (the default), median, successive_halving or hyperband.",
        show_default=False,
    ),
    trials: Optional[int] = typer.Option(None, "--trials", help="With --search: configs to try.", show_default=False),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="With --config: N (seeds 0..N-1) or a list [0,7,42].", show_default=False
    ),
    jobs: Optional[int] = _jobs_option(),
    threads: Optional[int] = _threads_option(),
    backend: Optional[str] = _backend_option(),
    address: Optional[str] = _address_option(),
    dry_run: bool = _flag("--dry-run", help="Print the runs and their count; run nothing."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep folder is written."),
    data_dir: Optional[Path] = _data_dir_option(),
    quiet: bool = _flag("--quiet", "-q", help="No live view: a line per finished run, then the closing lines."),
    tensorboard: Optional[Path] = _tensorboard_option("each run's epochs end"),
    yes: bool = _flag("--yes", help="Allow more than 10,000 runs."),
    # The older spellings of `mlp-lab resume SWEEP` and `mlp-lab refine SEARCH [--top K]`:
    # they keep working, out of --help's way.
    resume: Optional[Path] = typer.Option(None, "--resume", hidden=True),
    refine: Optional[Path] = typer.Option(None, "--refine", hidden=True),
    top: int = typer.Option(5, "--top", hidden=True),
) -> None:
    """Many runs from one file: a grid, cases and seeds, or a search (--search).

    The runs go into one sweep folder (runs/<name>-<timestamp>-<id>/) with the resolved
    sweep file and a manifest; compare, show and resume work on them unchanged.
    Examples: mlp-lab sweep configs/sweeps/activations_inits.yaml;
    mlp-lab sweep --config configs/relu_adam.yaml --grid model.activation=relu,tanh --seeds 3;
    mlp-lab sweep --config relu_adam --search optimizer.lr=log_uniform:1e-4:1e-1 --trials 20 --method tpe
    """
    from mlp_lab.sweeps.console import refined_file, sweep_from_cli
    from mlp_lab.sweeps.spec import SearchOptions

    if refine is not None:
        if file is not None or resume is not None:
            raise MlpLabError(
                "--refine makes its own sweep file from the search folder; give no sweep file or --resume"
            )
        file = refined_file(refine, top, trials)
    raise typer.Exit(
        sweep_from_cli(
            _located(file, "sweep"),
            set_,
            jobs,
            threads,
            dry_run,
            resume,
            runs_dir,
            data_dir,
            quiet,
            yes,
            backend=backend,
            address=address,
            shorthand=(_located(config), grid, seeds),
            search=SearchOptions(search, trials if refine is None else None, method, prune),
            tensorboard=tensorboard,
        )
    )


@app.command(cls=_Command)
@_user_errors
def refine(
    folder: Path = typer.Argument(..., help="A finished search's folder.", show_default=False),
    top: int = typer.Option(5, "--top", help="The trials whose values the new ranges span."),
    trials: Optional[int] = typer.Option(
        None, "--trials", help="Trials of the new search (default: as many as before).", show_default=False
    ),
    set_: List[str] = typer.Option(
        [],
        "--set",
        help="Override a field in every run: --set train.epochs=5 (repeatable).",
        autocompletion=_complete_set,
    ),
    jobs: Optional[int] = _jobs_option(),
    threads: Optional[int] = _threads_option(),
    backend: Optional[str] = _backend_option(),
    address: Optional[str] = _address_option(),
    dry_run: bool = _flag("--dry-run", help="Write the refined search file and print its trials; run nothing."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the new search's folder is written."),
    data_dir: Optional[Path] = _data_dir_option(),
    quiet: bool = _flag("--quiet", "-q", help="No live view: a line per finished run, then the closing lines."),
    tensorboard: Optional[Path] = _tensorboard_option("each run's epochs end"),
) -> None:
    """Coarse to fine: a new search narrowed to the top trials of a finished one, and run.

    Each searched range narrows to the box the top K completed trials span (with a
    margin; in log space for log ranges), each choice to the options among them. The
    refined search is written into FOLDER as refined.yaml (rerun it with mlp-lab sweep),
    and runs in a new search folder.
    Example: mlp-lab refine runs/lr-search-20261204-120000-a1b2c3 --top 4 --trials 8
    """
    from mlp_lab.sweeps.console import refine_from_cli

    code = refine_from_cli(
        folder,
        top,
        trials,
        overrides=set_,
        jobs=jobs,
        threads=threads,
        dry_run=dry_run,
        resume=None,
        runs_dir=runs_dir,
        data_dir=data_dir,
        quiet=quiet,
        yes=False,
        backend=backend,
        address=address,
        tensorboard=tensorboard,
    )
    raise typer.Exit(code)


@app.command(cls=_Command)
@_user_errors
def confirm(
    folder: Path = typer.Argument(..., help="A finished search's folder.", show_default=False),
    top: int = typer.Option(3, "--top", help="The search's best trials to re-run: the winner and its rivals."),
    seeds: int = typer.Option(5, "--seeds", help="Fresh seeds each (seeds the search never used; 3 or more)."),
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Runs at once (a process each; default: one per core, at most 8).",
        show_default=False,
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per run.", show_default=False),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the confirming sweep folder is written."),
    data_dir: Optional[Path] = _data_dir_option(),
    quiet: bool = _flag("--quiet", "-q", help="No live view: a line per finished run, then the verdict."),
) -> None:
    """Is a search's winner really ahead? Re-run its top trials on fresh seeds and say.

    The top K trials train again on N seeds the search never used (new inits, batch
    orders and validation splits); each rival is tested against the winner on the
    search's metric, Holm-adjusted, and the last line says confirmed or not.
    Example: mlp-lab confirm runs/lr-search-20261204-120000-a1b2c3 --top 3 --seeds 5
    """
    from mlp_lab.sweeps.console import confirm_from_cli

    raise typer.Exit(confirm_from_cli(folder, top, seeds, jobs, threads, runs_dir, data_dir, quiet))


@app.command(cls=_Command)
@_user_errors
def check(
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="YAML experiment file (or a shipped config's name): the config to check.",
        show_default=False,
        autocompletion=_complete_config,
    ),
    set_: List[str] = typer.Option(
        [], "--set", help="Override a field, as train's --set (repeatable).", autocompletion=_complete_set
    ),
    data_dir: Optional[Path] = _data_dir_option(),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the learning-rate range test to FILE.png."),
    format_: str = typer.Option("text", "--format", help="text or json."),
    tiny: int = typer.Option(20, "--tiny", help="Training images the network must be able to overfit."),
) -> None:
    """Before a long run: loss at init, regularisation, overfitting a tiny set, a learning-rate range test, the update ratio.

    Each check passes, warns or fails with the number measured, the one expected and what
    to change. Exit 0 when nothing fails, 1 when a check fails. Writes nothing but --plot.
    """
    import json

    from mlp_lab.checklist import check_lines, run_check
    from mlp_lab.config import load_config
    from mlp_lab.errors import ConfigError, lookup
    from mlp_lab.plots import check_plot_path, plot_lr_range

    lookup({"text": None, "json": None}, "--format", format_, ConfigError)
    if plot is not None:
        check_plot_path(plot)
    result = run_check(load_config(_located(config), set_), data_dir=data_dir, tiny=tiny)
    typer.echo(json.dumps(result.to_dict(), indent=2) if format_ == "json" else "\n".join(check_lines(result)))
    if plot is not None and result.curve.get("lr"):
        plot_lr_range(result, plot)
        typer.echo(f"wrote plot to {plot}", err=True)
    raise typer.Exit(result.exit_code)


@app.command(cls=_Command)
@_user_errors
def schema() -> None:
    """Print the config's JSON schema (every key, its default and what it allows)."""
    import json

    from mlp_lab.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


def _stdout_console():
    import os

    from rich.console import Console

    console = Console(highlight=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a pipe or a file: don't squeeze tables into 80 columns
    return console


def _show(console: Any, *renderables: Any) -> None:
    """Print to the terminal as Rich lays it out; into a pipe or a file, the same text
    without the trailing spaces Rich pads each line with to the console's width."""
    if console.is_terminal:
        console.print(*renderables)
        return
    with console.capture() as captured:
        console.print(*renderables)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


@app.command(cls=_Command)
@_user_errors
def compare(
    paths: List[Path] = typer.Argument(
        None, help="Run folders, or folders holding run folders (default: runs/).", show_default=False
    ),
    sort: Optional[str] = typer.Option(
        None,
        "--sort",
        "-s",
        help="Metric or config field to sort by; accuracies best first, losses and time lowest first (default: val_acc when the runs have a validation split, else test_acc; a search's own metric for search folders).",
        show_default=False,
    ),
    reverse: bool = _flag("--reverse", "-r", help="Reverse the sort order."),
    top: Optional[int] = typer.Option(
        None, "--top", "-n", help="Keep only the first N rows (runs or seed groups) after sorting."
    ),
    filter_: List[str] = typer.Option(
        [],
        "--filter",
        "-f",
        help="Keep runs where key=value (or !=, >, <, >=, <=); values read as YAML, so optimizer.lr=1e-3 matches 0.001; a metric filter keeps seed groups by their mean. Repeatable.",
    ),
    all_params: bool = _flag("--all-params", "-a", help="Show every config field, not only those that differ."),
    format_: Optional[str] = typer.Option(
        None, "--format", help="table, json, csv or markdown (default: from --output's suffix, else table)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file (atomically) instead of printing."
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Also draw the compared runs' learning curves to FILE.png."
    ),
    no_group: bool = _flag("--no-group", help="One row per run: don't group runs that differ only in their seed."),
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

    Runs that differ only in their seed are one row: mean ± std over the seeds, a 95%
    interval, and each group's difference to the baseline with a p-value.

    Example: mlp-lab compare runs/ --filter data.dataset=mnist --sort val_acc --top 5 --plot curves.png
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
        console = _stdout_console()
        _show(console, cmp.table_renderable(comp, console.width))
    else:
        typer.echo(cmp.render(comp, fmt), nl=False)
    if plot is not None:
        best = comp.rows.index(comp.best) if comp.best is not None else None
        runs = [cmp.runs_of(r) for r in comp.rows]  # a seed group's runs draw as its mean and ±1 std band
        plots.plot_comparison([[r.history for r in group] for group in runs], cmp.plot_labels(comp), plot, best=best)
        typer.echo(f"wrote plot to {plot}", err=True)
        _plot_diagnostics([[r.path for r in group] for group in runs], cmp.plot_labels(comp), plot)
        _plot_searches(paths or [Path("runs")], plot)


@app.command(cls=_Command)
@_user_errors
def report(
    paths: List[Path] = typer.Argument(
        None, help="Run folders, or folders holding run folders (default: runs/).", show_default=False
    ),
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
    no_group: bool = _flag("--no-group", help="One row per run: don't group runs that differ only in their seed."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="Group runs by these fields only (KEY[,KEY])."),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="The group every other is tested against (key=value[,key=value])."
    ),
) -> None:
    """One self-contained HTML page of a comparison: table, verdict, curves, diagnostics, configs, warnings.

    No network, no scripts: styles and figures are inside the file, so it can be mailed
    or put on a course page. Example: mlp-lab report runs/lecture -o lecture.html
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


export_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Write runs in other tools' formats.")
app.add_typer(export_app, name="export")


@export_app.command("tensorboard", cls=_Command)
@_user_errors
def export_tensorboard(
    paths: List[Path] = typer.Argument(
        None, help="Run folders, or folders holding run folders (default: runs/).", show_default=False
    ),
    logdir: Path = typer.Option(..., "--logdir", help="TensorBoard's log folder to write into.", show_default=False),
    filter_: List[str] = typer.Option(
        [], "--filter", "-f", help="Keep runs where key=value, as compare's. Repeatable."
    ),
) -> None:
    """Per-epoch scalars, diagnostics per layer and hyper-parameters (HParams) as TensorBoard event files.

    The runs of one seed group are named <group>/seed<N>, so TensorBoard's run filter
    selects a group. Needs the [tensorboard] extra. Then: tensorboard --logdir DIR
    """
    from mlp_lab.export import export_tensorboard as export

    written = export(paths or [Path("runs")], logdir, filters=filter_)
    typer.echo(
        f"wrote {len(written)} run{'s' if len(written) != 1 else ''} to {logdir} (tensorboard --logdir {logdir})",
        err=True,
    )


@export_app.command("mlflow", cls=_Command)
@_user_errors
def export_mlflow(
    paths: List[Path] = typer.Argument(
        None, help="Run folders, or folders holding run folders (default: runs/).", show_default=False
    ),
    tracking_uri: str = typer.Option(
        "sqlite:///mlflow.db", "--tracking-uri", help="The MLflow tracking store (a database URI or a server's URL)."
    ),
    experiment: str = typer.Option("mlp-lab", "--experiment", help="The MLflow experiment the runs go into."),
) -> None:
    """Each run as an MLflow run: config as params, per-epoch metrics, status, tags, config and summary.

    Exporting again updates the same MLflow runs instead of adding copies. Needs the
    [mlflow] extra. Then: mlflow ui --backend-store-uri URI
    """
    from mlp_lab.export_mlflow import export_mlflow as export

    done = export(paths or [Path("runs")], tracking_uri, experiment)
    new = sum(e.new for e in done)
    typer.echo(
        f"exported {len(done)} run{'s' if len(done) != 1 else ''} to {tracking_uri}, experiment {experiment} "
        f"({new} new, {len(done) - new} updated); see them with: mlflow ui --backend-store-uri {tracking_uri}",
        err=True,
    )


@app.command(cls=_Command)
@_user_errors
def show(
    run: Path = typer.Argument(..., help="A run folder.", show_default=False),
    all_: bool = _flag("--all", help="Show every config field, not only those that differ from the defaults."),
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
    console = _stdout_console()
    _show(console, *cmp.show_renderables(details, all_params=all_))
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


@app.command(cls=_Command)
@_user_errors
def inspect(
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="YAML experiment file (or a shipped config's name): the network to build.",
        show_default=False,
        autocompletion=_complete_config,
    ),
    set_: List[str] = typer.Option(
        [],
        "--set",
        help="Override a field: --set model.hidden=[500,500,500] (repeatable).",
        autocompletion=_complete_set,
    ),
    data_dir: Optional[Path] = _data_dir_option(),
    batch: int = typer.Option(1000, "--batch", help="Samples pushed through the network."),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="Draw a histogram of each layer's activations to FILE.png."
    ),
    synthetic_input: bool = _flag(
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
    cfg = load_config(_located(config), set_)
    result = inspect_network(cfg, data_dir=data_dir, batch=batch, synthetic=synthetic_input)
    console = _stdout_console()
    _show(console, inspection_table(result, title=f"{cfg.name}: {len(result.layers)} hidden layers at initialisation"))
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)
    if plot is not None:
        plot_activation_histograms(result, plot, title=f"{cfg.name}: {cfg.model.activation}, init {cfg.model.init}")
        typer.echo(f"wrote plot to {plot}", err=True)


@app.command(cls=_Command)
@_user_errors
def configs(
    copy: Optional[str] = typer.Option(
        None, "--copy", help="Copy this shipped config (or sweep file) out to start your own.", show_default=False
    ),
    to: Path = typer.Option(Path("."), "--to", help="Where --copy puts it: a folder, or a file name."),
) -> None:
    """The configs and sweep files that ship with mlp-lab, each with what it is for.

    Any of them works by name where a file is asked for: mlp-lab train --config relu_adam;
    mlp-lab sweep batchnorm. Start your own from one: mlp-lab configs --copy relu_adam --to my.yaml
    """
    from mlp_lab.shipped import copy_out, list_shipped, shipped_dir

    if copy is not None:
        typer.echo(f"wrote {copy_out(copy, to)}")
        return
    entries = list_shipped()
    width = max((len(e.name) for e in entries), default=0)
    for kind, title in (("config", "train configs"), ("sweep", "sweep files")):
        typer.echo(f"{title} (in {shipped_dir()}):")
        for e in (e for e in entries if e.kind == kind):
            typer.echo(f"  {e.name:<{width}}  {e.description}".rstrip())


def main() -> None:
    """The console script: the app, then a quick exit when torch was loaded (process_exit)."""
    try:
        app()
    except SystemExit as stop:
        leave(stop.code)


if __name__ == "__main__":
    main()
