"""What the commands share: option declarations, shipped-name lookup, the one-line
error for a user's mistake, and printing Rich renderables to a terminal or a pipe."""

from __future__ import annotations

import errno
import functools
import os
import re
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Optional, overload

import typer
from typer.core import TyperCommand, TyperGroup

try:  # newer typer releases carry their own copy of click
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError  # type: ignore[assignment]

from mlp_lab.errors import MlpLabError, shorten


class _PlainFlags:
    """Lists on/off options (ours, --help, --install-completion) without Typer's '<bool>'
    type column: a flag takes no value, so a type beside it only misleads."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _OneLineUsageErrors:
    """A mistyped option or command, a missing or ill-typed value: one line on stderr and
    exit 2, as every other mistake, instead of Typer's usage text and boxed message."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[misc]
        except UsageError as e:
            # Some errors (an option's missing value) come without a context: name the
            # command from the one being made.
            _usage_error(e, f"{parent.command_path} {info_name}" if parent is not None else str(info_name))

    def resolve_command(self, ctx: Any, args: Any) -> Any:  # a group's: `mlp-lab trian`
        try:
            return super().resolve_command(ctx, args)  # type: ignore[misc]
        except UsageError as e:
            _usage_error(e, ctx.command_path)


def _usage_error(e: Any, command: str) -> NoReturn:
    if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as asked for
        raise e
    where = e.ctx.command_path if e.ctx is not None else command
    message = " ".join(e.format_message().split()).rstrip(".")
    message = re.sub(r"\(Possible options?: (.*)\)$", r"(did you mean \1?)", message)
    typer.echo(f"error: {where}: {message[:1].lower()}{message[1:]} (see {where} --help)", err=True)
    raise typer.Exit(2) from None


class Command(_OneLineUsageErrors, _PlainFlags, TyperCommand):
    pass


class Group(_OneLineUsageErrors, _PlainFlags, TyperGroup):
    pass


def complete_config(incomplete: str) -> List[str]:
    """--config: YAML files here, then the shipped configs by name."""
    from mlp_lab.shipped import list_shipped

    here = [str(p) for p in sorted(Path(".").glob(f"{incomplete}*")) if p.suffix in (".yaml", ".yml") or p.is_dir()]
    return here + [s.name for s in list_shipped() if s.name.startswith(incomplete)]


def complete_sweep(incomplete: str) -> List[str]:
    from mlp_lab.shipped import list_shipped

    here = [str(p) for p in sorted(Path(".").glob(f"{incomplete}*")) if p.suffix in (".yaml", ".yml") or p.is_dir()]
    names = [n for s in list_shipped() if s.kind == "sweep" for n in (s.name, s.name.removeprefix("sweeps/"))]
    return here + sorted({n for n in names if n.startswith(incomplete)})


def complete_set(incomplete: str) -> List[str]:
    """--set: every key path of the config (optimizer and scheduler fields of every variant), as 'key='."""
    from mlp_lab.config import settable_keys

    return [f"{k}=" for k in settable_keys() if k.startswith(incomplete)]


def flag(*decls: str, help: str) -> Any:
    """An on/off option, off unless given."""
    return typer.Option(False, *decls, help=help)


def config_option(help: str, required: bool = False) -> Any:
    """--config/-c: a YAML file, or a shipped config's name (completed from both)."""
    return typer.Option(
        ... if required else None, "--config", "-c", help=help, show_default=False, autocompletion=complete_config
    )


def set_option(help: str) -> Any:
    """--set key.path=value, repeatable (completed from the config's keys)."""
    return typer.Option([], "--set", help=help, autocompletion=complete_set)


def data_dir_option() -> Any:
    """--data-dir, as every command that reads data takes it."""
    return typer.Option(None, "--data-dir", help="Data directory (else $MLP_LAB_DATA, data.data_dir, ./data).")


# The options of how a sweep's runs run: sweep, refine and resume take them alike.


def jobs_option() -> Any:
    return typer.Option(
        None,
        "--jobs",
        "-j",
        help="Runs at once (local: a process each; default: one per core, at most 8. ray: default no cap).",
        show_default=False,
    )


def threads_option() -> Any:
    return typer.Option(
        None,
        "--threads",
        help="torch threads per run (local default: the cores shared among the jobs; ray: 1, its num_cpus).",
        show_default=False,
    )


def backend_option() -> Any:
    return typer.Option(
        None,
        "--backend",
        help="local (a process per run, the default) or ray (a Ray task per run; needs the ray extra, see the README).",
        show_default=False,
    )


def address_option() -> Any:
    return typer.Option(
        None,
        "--address",
        help="With --backend ray: the cluster (HOST:PORT, ray://HOST:PORT; default $RAY_ADDRESS, else a local Ray for this sweep).",
        show_default=False,
    )


def tensorboard_option(each: str) -> Any:
    return typer.Option(
        None,
        "--tensorboard",
        help=f"Also write TensorBoard events to DIR as {each} (tensorboard --logdir DIR).",
        show_default=False,
    )


@overload
def located(arg: Path, kind: str = ...) -> Path: ...
@overload
def located(arg: None, kind: str = ...) -> None: ...
def located(arg: Optional[Path], kind: str = "config") -> Optional[Path]:
    """The file ``--config`` (or a sweep file) names: the path itself, else the shipped one
    of that name, said on stderr."""
    if arg is None:
        return None
    from mlp_lab.shipped import locate

    path, entry = locate(arg, kind)
    if entry is not None:
        typer.echo(f"using the shipped {kind} {entry.name} ({path})", err=True)
    return path


def user_errors(fn: Callable) -> Callable:
    """A user's mistake is one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MlpLabError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            # A path typed on the command line or in a config (--config, --output, a sweep's
            # base:) that no file system can hold: the first stat of it fails, before anything
            # is written.
            if e.errno != errno.ENAMETOOLONG:
                raise
            typer.echo(f"error: {_name_too_long(e.filename)}", err=True)
            raise typer.Exit(2) from None

    return wrapper


NAME_MAX = 255  # bytes in one file or folder name: ext4, XFS, Btrfs, APFS, NTFS (in characters)
PATH_MAX = 4096  # bytes in a whole path, Linux's limit (macOS: 1024)


def _name_too_long(path: object) -> str:
    if not isinstance(path, (str, bytes)):
        return "a file name or path is too long for the file system"
    text = os.fsdecode(path)
    longest = max(Path(text).parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > NAME_MAX:
        size = len(os.fsencode(longest))
        return f"file name too long: {shorten(longest)} has {size} bytes; a name in a path may have at most {NAME_MAX}"
    return f"path too long: {shorten(text)} has {len(os.fsencode(text))} bytes; a path may have at most {PATH_MAX}"


def stdout_console():
    from rich.console import Console

    from mlp_lab.results import table_width

    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:
        console.width = table_width()  # a pipe or a file: every column (or $COLUMNS), not squeezed into 80
    return console


def print_renderables(console: Any, *renderables: Any) -> None:
    """Print to the terminal as Rich lays it out; into a pipe or a file, the same text
    without the trailing spaces Rich pads each line with to the console's width."""
    if console.is_terminal:
        console.print(*renderables)
        return
    with console.capture() as captured:
        console.print(*renderables)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
