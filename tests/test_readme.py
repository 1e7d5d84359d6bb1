"""The README stays true: its commands are the ones CI runs, its table lists every key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import BaseModel

from mlp_lab.config import config_to_dict
from mlp_lab.keys import flatten
from mlp_lab.schema import OPTIMIZER_NAMES, SCHEDULER_NAMES, ExperimentConfig

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_setup_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in README and 'pip install -e ".[dev]"' in ci
    assert "python -m pytest" in README and "python -m pytest" in ci
    assert "mlp-lab train --config configs/relu_adam.yaml" in README
    assert (REPO / "configs" / "relu_adam.yaml").is_file()


def test_readme_table_names_every_config_key_and_choice():
    keys = [
        k
        for k in flatten(config_to_dict(ExperimentConfig()))
        if not k.startswith(("optimizer.", "scheduler.")) and k != "description"
    ]
    missing = [k for k in keys if f"`{k}`" not in README]
    assert not missing, f"README's config table lacks {missing}"
    for name in OPTIMIZER_NAMES + SCHEDULER_NAMES:
        assert f"`{name}`" in README, name
    choices = {
        c for section in ("data", "model", "train") for c in _choices(ExperimentConfig.model_fields[section].annotation)
    }
    assert {"relu", "kaiming_normal", "batchnorm", "cifar10", "bf16"} <= choices  # the walk finds the Literals
    for choice in sorted(choices):
        assert f"`{choice}`" in README, f"README does not mention the choice {choice!r}"


def _choices(annotation) -> set[str]:
    """Every string a Literal inside ``annotation`` allows, through unions, Annotated and
    the sections' own fields (the schema is the one source of the choices)."""
    if isinstance(annotation, type) and get_origin(annotation) is None and issubclass(annotation, BaseModel):
        return {c for f in annotation.model_fields.values() for c in _choices(f.annotation)}
    if get_origin(annotation) is Literal:
        return {a for a in get_args(annotation) if isinstance(a, str)}
    return {c for arg in get_args(annotation) for c in _choices(arg)}
