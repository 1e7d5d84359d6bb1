"""The README stays true: its commands are the ones CI runs, its table lists every key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel

from mlp_lab.schema import OPTIMIZER_NAMES, SCHEDULER_NAMES, ExperimentConfig

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_setup_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in README and 'pip install -e ".[dev]"' in ci
    assert "python -m pytest" in README and "python -m pytest" in ci
    assert "mlp-lab train --config configs/relu_adam.yaml" in README
    assert (REPO / "configs" / "relu_adam.yaml").is_file()


def test_the_config_reference_names_every_choice_of_the_schema():
    """docs/reference/config.md is generated from the schema (tests/test_docs.py checks it is
    current); here: the walk over the schema finds every Literal, and the page has each."""
    reference = (REPO / "docs" / "reference" / "config.md").read_text()
    for name in OPTIMIZER_NAMES + SCHEDULER_NAMES:
        assert f"`{name}`" in reference, name
    choices = {
        c for section in ("data", "model", "train") for c in _choices(ExperimentConfig.model_fields[section].annotation)
    }
    assert {"relu", "kaiming_normal", "batchnorm", "cifar10", "bf16", "val_loss"} <= choices  # the walk finds them
    for choice in sorted(choices):
        assert f"`{choice}`" in reference, f"the config reference does not mention the choice {choice!r}"


def test_help_and_the_commands_table_name_search_refine_confirm_and_resume():
    from typer.testing import CliRunner

    from mlp_lab.cli import app

    help_text = CliRunner().invoke(app, ["--help"]).stdout
    for command in ("search", "refine", "confirm", "resume"):
        assert command in help_text, command
    for words in ("--search", "mlp-lab refine", "mlp-lab confirm", "mlp-lab resume"):
        assert words in README, words


def _choices(annotation) -> set[str]:
    """Every string a Literal inside ``annotation`` allows, through unions, Annotated and
    the sections' own fields (the schema is the one source of the choices)."""
    if isinstance(annotation, type) and get_origin(annotation) is None and issubclass(annotation, BaseModel):
        return {c for f in annotation.model_fields.values() for c in _choices(f.annotation)}
    if get_origin(annotation) is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    return {c for arg in get_args(annotation) for c in _choices(arg)}
