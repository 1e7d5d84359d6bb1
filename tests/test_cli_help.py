"""What `mlp-lab COMMAND --help` shows a person: the help as written, on an 80-column terminal."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from mlp_lab.cli import app


def _commands():
    root = typer.main.get_command(app)
    for name, cmd in root.commands.items():
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            yield [name, sub_name], sub
        if not hasattr(cmd, "commands"):
            yield [name], cmd


COMMANDS = list(_commands())


def _help(args: list[str]) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("args,cmd", COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_every_line_of_a_commands_help_shows_whole_at_80_columns(args, cmd):
    shown = [" ".join(line.split()) for line in _help(args).splitlines()]
    body = (cmd.help or "").split("\n\n", 1)[1:]
    for line in "\n".join(body).splitlines():
        if line.strip():
            written = " ".join(line.replace("\\[", "[").split())
            assert written in shown, f"mlp-lab {' '.join(args)} --help breaks the line {written!r}"


def test_no_help_text_holds_a_word_in_brackets_that_rich_would_drop():
    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[]*?\]")  # Rich markup's style tag, unescaped
    for args, cmd in COMMANDS:
        for text in [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]:
            assert not tag.search(text), f"mlp-lab {' '.join(args)}: {text!r}"
    assert 'pip install "mlp-lab[tensorboard]"' in _help(["export", "tensorboard"])
    assert 'pip install "mlp-lab[mlflow]"' in _help(["export", "mlflow"])


def test_the_older_spellings_are_out_of_helps_way():
    """`train --resume`, `sweep --resume`, `sweep --refine`: still taken (their tests use
    them), not listed; `mlp-lab resume` and `mlp-lab refine` are."""
    assert "--resume" not in _help(["train"])
    sweep_help = _help(["sweep"])
    assert "--resume" not in sweep_help and "--refine" not in sweep_help and "--top" not in sweep_help
    listed = _help([])
    assert re.search(r"│ resume\s", listed) and re.search(r"│ refine\s", listed)
