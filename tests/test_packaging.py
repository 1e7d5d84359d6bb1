"""The package's own facts stay in one place and its checks stay runnable: the version, the
declared floors against the workflow's lowest-versions job, the workflow itself (linted
offline), the pre-commit hooks and the changelog."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from helpers import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra brings tomli on 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]' brings it)")
    return found


def test_the_version_is_the_installed_distributions():
    import mlp_lab

    assert mlp_lab.__version__ == metadata.version("mlp-lab") == PYPROJECT["project"]["version"]
    res = cli("--version")
    assert res.code == 0 and res.stdout == f"mlp-lab {mlp_lab.__version__}\n"


def test_the_version_flag_leaves_every_command_alone():
    # (typer 0.12 with today's click read every flag as set: each command printed the version)
    res = cli("configs")
    assert res.code == 0 and "mlp-lab 0" not in res.stdout and "train configs" in res.stdout


def test_the_changelog_has_this_version():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog")
    assert f"## [{PYPROJECT['project']['version']}]" in text


def _floors() -> dict[str, str]:
    out = {}
    for req in PYPROJECT["project"]["dependencies"]:
        name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", req.split(";")[0].strip()).groups()
        out[name.lower()] = floor
    return out


def test_the_lowest_versions_job_installs_exactly_the_declared_floors():
    pins = {}
    for line in (REPO / ".github" / "lowest-requirements.txt").read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", line.strip()):
            pins[m.group(1).lower()] = m.group(2)
    assert pins == _floors()
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    steps = "\n".join(step.get("run", "") for step in jobs["lowest"]["steps"])
    assert "pip install -r .github/lowest-requirements.txt" in steps and "--no-deps" in steps
    assert 'python -m pytest -m "not slow"' in steps


def test_the_dev_extra_builds_the_docs_as_the_docs_extra_does():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras["docs"]) <= set(extras["dev"])  # the docs test builds with what docs users install


def test_the_workflow_runs_the_checks_and_the_tiers_the_readme_names():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = "\n".join(step.get("run", "") for step in workflow["jobs"]["checks"]["steps"])
    for command in (
        "ruff check .",
        "ruff format --check .",
        "mypy",
        'python -m pytest -m "not slow"',
        "python -m pytest",
    ):
        assert command in steps, command
    assert workflow["jobs"]["checks"]["strategy"]["matrix"]["python"] == ["3.10", "3.11", "3.12", "3.13"]
    assert "download.pytorch.org/whl/cpu" in steps
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert 'python -m pytest -m "not slow"' in readme


def test_actionlint_passes_on_the_workflow():
    res = subprocess.run([_tool("actionlint"), str(WORKFLOW)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_workflow_matches_githubs_schema():
    res = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_pre_commit_hooks_are_local_and_call_the_tools_ci_runs():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    assert [r["repo"] for r in config["repos"]] == ["local"]  # nothing to fetch: works offline
    entries = {h["id"]: h["entry"] for h in config["repos"][0]["hooks"]}
    assert entries["ruff-check"].startswith("ruff check") and entries["ruff-format"].startswith("ruff format --check")
    assert entries["mypy"] == "mypy"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "ruff check ." in ci and "ruff format --check ." in ci and "mypy" in ci
