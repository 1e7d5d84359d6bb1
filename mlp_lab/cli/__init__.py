"""The command line. Each command parses, calls one library function, prints.

The commands live by what they work on (``train_commands``: one run; ``sweep_commands``:
sweeps and searches; ``result_commands``: finished runs; ``config_commands``: a config
before it trains), what they share in ``options``; this module makes the app of them,
in the order ``--help`` lists them.

Help texts are Rich markup: a bracketed word ("[mlflow]") is a style to Rich, which drops
it, so a bracket before a word is written \\[. A body line of a command's help stays
within 76 characters, so an 80-column terminal shows it as written.

Nothing here imports torch at module level: ``mlp-lab --help`` and ``mlp-lab compare``
must start fast, so heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import typer

from mlp_lab.cli.config_commands import check, configs, inspect, schema
from mlp_lab.cli.options import Command, Group
from mlp_lab.cli.result_commands import compare, export_app, report, show
from mlp_lab.cli.sweep_commands import confirm, refine, sweep
from mlp_lab.cli.train_commands import resume, train
from mlp_lab.process_exit import leave

app = typer.Typer(
    cls=Group,
    add_completion=True,  # --install-completion: config names for --config, key paths for --set
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mlp-lab: train MLPs from YAML experiments and compare what each choice does.",
)
for command in (train, resume, sweep, refine, confirm, check, schema, compare, report, show, inspect, configs):
    app.command(cls=Command)(command)
app.add_typer(export_app, name="export")


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


def main() -> None:
    """The console script: the app, then a quick exit when torch was loaded (process_exit)."""
    try:
        app()
    except SystemExit as stop:
        leave(stop.code)


if __name__ == "__main__":
    main()
