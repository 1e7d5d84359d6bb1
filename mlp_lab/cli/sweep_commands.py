"""mlp-lab sweep, refine and confirm: many runs in one sweep folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from mlp_lab.cli.options import (
    address_option,
    backend_option,
    complete_sweep,
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
def sweep(
    file: Optional[Path] = typer.Argument(
        None,
        help="The sweep file (YAML): base or configs, set, grid, cases, seeds; or a shipped one's name.",
        show_default=False,
        autocompletion=complete_sweep,
    ),
    set_: List[str] = set_option("Override a field in every run: --set train.epochs=5 (repeatable)."),
    config: Optional[Path] = config_option(
        "Shorthand with no sweep file: this train config as the base, with --grid or --search, and --seeds."
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
    jobs: Optional[int] = jobs_option(),
    threads: Optional[int] = threads_option(),
    backend: Optional[str] = backend_option(),
    address: Optional[str] = address_option(),
    dry_run: bool = flag("--dry-run", help="Print the runs and their count; run nothing."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep folder is written."),
    data_dir: Optional[Path] = data_dir_option(),
    quiet: bool = flag("--quiet", "-q", help="No live view: a line per finished run, then the closing lines."),
    tensorboard: Optional[Path] = tensorboard_option("each run's epochs end"),
    yes: bool = flag("--yes", help="Allow more than 10,000 runs."),
    # The older spellings of `mlp-lab resume SWEEP` and `mlp-lab refine SEARCH [--top K]`:
    # they keep working, out of --help's way.
    resume: Optional[Path] = typer.Option(None, "--resume", hidden=True),
    refine: Optional[Path] = typer.Option(None, "--refine", hidden=True),
    top: int = typer.Option(5, "--top", hidden=True),
) -> None:
    """Many runs from one file: a grid, cases and seeds, or a search (--search).

    The runs go into one sweep folder (runs/<name>-<timestamp>-<id>/) with
    the resolved sweep file and a manifest; compare, show and resume work on
    them unchanged.
    Examples: mlp-lab sweep configs/sweeps/activations_inits.yaml
    mlp-lab sweep --config relu_adam --grid model.activation=relu,tanh
    mlp-lab sweep --config relu_adam --search optimizer.lr=log_uniform:1e-4:1e-1
    """
    from mlp_lab.sweeps.console import refine_from_cli, sweep_from_cli
    from mlp_lab.sweeps.spec import SearchOptions

    options: dict[str, Any] = {
        "overrides": set_,
        "jobs": jobs,
        "threads": threads,
        "dry_run": dry_run,
        "resume": resume,
        "runs_dir": runs_dir,
        "data_dir": data_dir,
        "quiet": quiet,
        "yes": yes,
        "backend": backend,
        "address": address,
        "shorthand": (located(config), grid, seeds),
        "search": SearchOptions(search, trials if refine is None else None, method, prune),
        "tensorboard": tensorboard,
    }
    if refine is not None:
        if file is not None or resume is not None or config is not None or grid or search or method or prune or seeds:
            raise MlpLabError(
                "--refine makes its own sweep file from the search folder; give no sweep file, --resume, "
                "--config, --grid, --search, --seeds, --method or --prune (mlp-lab refine FOLDER --top K --trials N)"
            )
        raise typer.Exit(refine_from_cli(refine, top, trials, **options))
    raise typer.Exit(sweep_from_cli(located(file, "sweep"), **options))


@user_errors
def refine(
    folder: Path = typer.Argument(..., help="A finished search's folder.", show_default=False),
    top: int = typer.Option(5, "--top", help="The trials whose values the new ranges span."),
    trials: Optional[int] = typer.Option(
        None, "--trials", help="Trials of the new search (default: as many as before).", show_default=False
    ),
    set_: List[str] = set_option("Override a field in every run: --set train.epochs=5 (repeatable)."),
    jobs: Optional[int] = jobs_option(),
    threads: Optional[int] = threads_option(),
    backend: Optional[str] = backend_option(),
    address: Optional[str] = address_option(),
    dry_run: bool = flag("--dry-run", help="Write the refined search file and print its trials; run nothing."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the new search's folder is written."),
    data_dir: Optional[Path] = data_dir_option(),
    quiet: bool = flag("--quiet", "-q", help="No live view: a line per finished run, then the closing lines."),
    tensorboard: Optional[Path] = tensorboard_option("each run's epochs end"),
) -> None:
    """Coarse to fine: a new search narrowed to the top trials of a finished one, and run.

    Each searched range narrows to the box the top K completed trials span
    (with a margin; in log space for log ranges), each choice to the options
    among them. The refined search is written into FOLDER as refined.yaml
    (rerun it with mlp-lab sweep), and runs in a new search folder.
    Example: mlp-lab refine runs/lr-search-20261204-120000-a1b2c3 --top 4
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


@user_errors
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
    data_dir: Optional[Path] = data_dir_option(),
    quiet: bool = flag("--quiet", "-q", help="No live view: a line per finished run, then the verdict."),
) -> None:
    """Is a search's winner really ahead? Re-run its top trials on fresh seeds and say.

    The top K trials train again on N seeds the search never used (new
    inits, batch orders and validation splits); each rival is tested against
    the winner on the search's metric, Holm-adjusted, and the last line says
    confirmed or not.
    Example: mlp-lab confirm runs/lr-search-20261204-120000-a1b2c3 --top 3
    """
    from mlp_lab.sweeps.console import confirm_from_cli

    raise typer.Exit(confirm_from_cli(folder, top, seeds, jobs, threads, runs_dir, data_dir, quiet))
